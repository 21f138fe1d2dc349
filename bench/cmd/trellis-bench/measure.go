package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// PeakAnon is the highest RssAnon of the tree's first process sampled
	// during the run (0 if /proc/PID/status had none).
	PeakAnon int64
	OK       bool // false when /proc could not be read
}

// meter samples the CPU and RSS of processes over a run. Create with
// startMeter; Stop ends its sampling goroutine.
type meter struct {
	procs []*proc.Process
	start []procfs.Usage
	t0    time.Time
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	peak     []int64
	peakAnon []int64
}

func startMeter(procs []*proc.Process) *meter {
	m := &meter{procs: procs, start: make([]procfs.Usage, len(procs)), peak: make([]int64, len(procs)), peakAnon: make([]int64, len(procs)), stop: make(chan struct{})}
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
				u, err := procfs.TreeUsage(p.PID())
				ms, merr := readMemStat(p.PID())
				m.mu.Lock()
				if err == nil {
					m.peak[i] = max(m.peak[i], u.RSS)
				}
				if merr == nil {
					m.peakAnon[i] = max(m.peakAnon[i], ms.Anon)
				}
				m.mu.Unlock()
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
		out[i] = usage{VCPU: (u.CPU - m.start[i].CPU).Seconds() / wall, RSS: u.RSS, PeakRSS: max(m.peak[i], u.RSS), PeakAnon: m.peakAnon[i], OK: true}
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

// memStat is a process's resident memory, split as /proc/PID/status splits
// it: VmRSS = RssAnon + RssFile + RssShmem. RssAnon is what the process
// allocated (Go heap, stacks, runtime metadata); RssFile is mostly the
// binary's own mapped pages: what start-up, the request path and the GC
// touched (by 64 KB windows), not config.
type memStat struct {
	RSS, Anon, File int64 // bytes
}

// parseMemStat reads VmRSS, RssAnon and RssFile ("NAME:  N kB" lines) from
// the contents of /proc/PID/status. VmRSS is required (a zombie has none);
// the split needs Linux 4.5 or later, and is 0 without it.
func parseMemStat(data []byte) (memStat, error) {
	var m memStat
	seen := false
	for line := range strings.Lines(string(data)) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst, seen = &m.RSS, true
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return memStat{}, fmt.Errorf("parse status: %s %q: want \"N kB\"", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<50 {
			return memStat{}, fmt.Errorf("parse status: %s %q: not a size", key, f[0])
		}
		*dst = kb * 1024
	}
	if !seen {
		return memStat{}, errors.New("parse status: no VmRSS line")
	}
	return m, nil
}

// readMemStat reads the memory split of pid (the process alone, not its tree).
func readMemStat(pid int) (memStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStat{}, fmt.Errorf("read status: %w", err)
	}
	return parseMemStat(data)
}

// medianMemStat is the field-wise median of samples (upper median for an
// even count); zero for none.
func medianMemStat(samples []memStat) memStat {
	if len(samples) == 0 {
		return memStat{}
	}
	med := func(get func(memStat) int64) int64 {
		v := make([]int64, len(samples))
		for i, s := range samples {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return memStat{
		RSS:  med(func(s memStat) int64 { return s.RSS }),
		Anon: med(func(s memStat) int64 { return s.Anon }),
		File: med(func(s memStat) int64 { return s.File }),
	}
}
