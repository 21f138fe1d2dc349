package main

import (
	"context"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/fortio"
	"github.com/trellis-mesh/trellis/bench/internal/proc"
	"github.com/trellis-mesh/trellis/bench/internal/procfs"
)

// usage is what a meter measured for one process tree over a run.
type usage struct {
	VCPU    float64 // CPU seconds per wall second
	RSS     int64   // bytes at the end of the run
	PeakRSS int64   // highest RSS sampled during the run
	OK      bool    // false when /proc could not be read
}

// meter samples the CPU and RSS of processes over a run. Create with
// startMeter; Stop ends its sampling goroutine.
type meter struct {
	procs []*proc.Process
	start []procfs.Usage
	t0    time.Time
	stop  chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	peak []int64
}

func startMeter(procs []*proc.Process) *meter {
	m := &meter{procs: procs, start: make([]procfs.Usage, len(procs)), peak: make([]int64, len(procs)), stop: make(chan struct{})}
	for i, p := range procs {
		m.start[i], _ = procfs.TreeUsage(p.PID())
	}
	m.t0 = time.Now()
	m.wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			for i, p := range procs {
				if u, err := procfs.TreeUsage(p.PID()); err == nil {
					m.mu.Lock()
					m.peak[i] = max(m.peak[i], u.RSS)
					m.mu.Unlock()
				}
			}
		}
	})
	return m
}

// Stop ends sampling and returns one usage per process.
func (m *meter) Stop() []usage {
	close(m.stop)
	m.wg.Wait()
	wall := time.Since(m.t0).Seconds()
	out := make([]usage, len(m.procs))
	for i, p := range m.procs {
		u, err := procfs.TreeUsage(p.PID())
		if err != nil || wall <= 0 {
			continue
		}
		out[i] = usage{VCPU: (u.CPU - m.start[i].CPU).Seconds() / wall, RSS: u.RSS, PeakRSS: max(m.peak[i], u.RSS), OK: true}
	}
	return out
}

// measured runs a warm-up load, then the measured load with a meter on the
// topology's proxies.
func measured(ctx context.Context, e *env, t *topo, name string, l fortio.Load) (*fortio.Result, []usage, error) {
	warm := l
	warm.Duration = e.warmDur
	if _, err := fortio.Run(ctx, e.fortio, e.dir("fortio"), name+"-warmup", warm); err != nil {
		return nil, nil, err
	}
	m := startMeter(t.proxies())
	res, err := fortio.Run(ctx, e.fortio, e.dir("fortio"), name, l)
	u := m.Stop()
	return res, u, err
}

// latencyValues turns a fortio result into table values in microseconds.
func latencyValues(r *fortio.Result) map[string]float64 {
	v := map[string]float64{"qps": r.ActualQPS, "errors": float64(r.Errors())}
	for _, p := range fortio.Percentiles {
		v[pctKey(p)] = float64(r.Latency[p].Nanoseconds()) / 1e3
	}
	return v
}

// perKRPS converts vCPU to vCPU per 1000 requests per second.
func perKRPS(vcpu, qps float64) float64 {
	if qps <= 0 {
		return 0
	}
	return vcpu / (qps / 1000)
}

func pctKey(p float64) string {
	switch p {
	case 50:
		return "p50"
	case 90:
		return "p90"
	case 99:
		return "p99"
	case 99.9:
		return "p999"
	}
	return "p?"
}

const mb = 1 << 20
