package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/fortio"
	"github.com/trellis-mesh/trellis/bench/internal/meshcfg"
	"github.com/trellis-mesh/trellis/bench/internal/proc"
	"github.com/trellis-mesh/trellis/bench/internal/procfs"
	"github.com/trellis-mesh/trellis/bench/internal/report"
)

// memorySizes are the service counts known to the client sidecar, and the
// services × endpoints of the per-endpoint run. That run adds 4900
// endpoints to the 100 × 1 point: the idle RssAnon of one config moves by
// 1–3 MB between runs (it depends on when the last GC fell during the
// config's arrival), which over the 900 endpoints of 100 × 10 made the
// slope swing from 1.7 to 4.7 KB per endpoint for one build.
func memorySizes(quick bool) (services []int, endpointsRun [2]int) {
	if quick {
		return []int{10, 50, 100}, [2]int{50, 5}
	}
	return []int{10, 100, 1000}, [2]int{100, 50}
}

// idleSamples is how many idle readings memoryPoint takes (1 s apart) once
// RSS has settled; the table shows their median, which a GC cycle or a
// scavenger pass in the middle of the window does not move.
func idleSamples(quick bool) int {
	if quick {
		return 3
	}
	return 7
}

// runMemory measures sidecar RSS idle and at 1000 rps with growing config,
// and derives the memory per cluster and per endpoint from the slopes.
func runMemory(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("memory", "Sidecar resident memory (MB), idle and at 1000 rps (16 connections)",
		report.Column{Key: "services", Header: "services"}, report.Column{Key: "endpoints", Header: "endpoints each"},
		report.Column{Key: "idle_client", Header: "client idle", Digits: 1},
		report.Column{Key: "idle_client_anon", Header: "anon", Digits: 1}, report.Column{Key: "idle_client_file", Header: "file", Digits: 1},
		report.Column{Key: "load_client", Header: "client at 1000 rps", Digits: 1}, report.Column{Key: "load_client_anon", Header: "anon", Digits: 1},
		report.Column{Key: "idle_server", Header: "server idle", Digits: 1}, report.Column{Key: "load_server", Header: "server at 1000 rps", Digits: 1},
		report.Column{Key: "cpu_client", Header: "client vCPU/krps", Digits: 3})
	tbl.Note("RSS is VmRSS (what the targets check); anon and file split it (RssAnon, RssFile from /proc/PID/status): file is mostly the binary's own pages. Idle: median of %d readings 1 s apart once RSS settled; at 1000 rps: the peak of readings every 250 ms. vCPU/krps: the client sidecar's CPU over the load run, so that memory settings can be weighed against it.", idleSamples(e.quick))
	services, epRun := memorySizes(e.quick)
	type point struct{ services, endpoints int }
	points := []point{}
	for _, s := range services {
		points = append(points, point{s, 1})
	}
	points = append(points, point{epRun[0], epRun[1]})
	idle := map[point]memStat{}
	profiles := 0
	for _, pt := range points {
		// The server's own service counts too: fillers are extra.
		label := fmt.Sprintf("trellis %d services × %d endpoints", pt.services, pt.endpoints)
		v, ms, err := memoryPoint(ctx, e, pt.services, pt.endpoints)
		if err != nil {
			tbl.Skip(label, err.Error())
			continue
		}
		if v["heap_profile"] > 0 {
			profiles++
		}
		delete(v, "heap_profile")
		idle[pt] = ms
		tbl.Add(label, v)
	}
	if profiles > 0 {
		tbl.Note("client sidecar heap profiles, idle (as of its last GC): bench/results/%s-proxy-heap-SERVICES-ENDPOINTS.prof; diff two with go tool pprof -diff_base", e.stampBase())
	}
	slope := rep.NewTable("memory_slope", "Sidecar memory per unit of config (client sidecar, idle RssAnon slope)",
		report.Column{Key: "kb_per_cluster", Header: "KB per cluster (with 1 endpoint)", Digits: 1},
		report.Column{Key: "kb_per_endpoint", Header: "KB per endpoint", Digits: 2},
		report.Column{Key: "kb_per_cluster_rss", Header: "VmRSS: KB per cluster", Digits: 1},
		report.Column{Key: "kb_per_endpoint_rss", Header: "VmRSS: KB per endpoint", Digits: 2})
	lo, hi := point{services[0], 1}, point{services[len(services)-1], 1}
	ep1, epN := point{epRun[0], 1}, point{epRun[0], epRun[1]}
	v := map[string]float64{}
	perUnit := func(key string, a, b point, units int) {
		x, okA := idle[a]
		y, okB := idle[b]
		if !okA || !okB {
			return
		}
		v[key] = float64(y.Anon-x.Anon) / 1024 / float64(units)
		v[key+"_rss"] = float64(y.RSS-x.RSS) / 1024 / float64(units)
	}
	perUnit("kb_per_cluster", lo, hi, hi.services-lo.services)
	perUnit("kb_per_endpoint", ep1, epN, epN.services*(epN.endpoints-1))
	if len(v) == 0 {
		slope.Skip("trellis", "needs the memory runs above")
		return
	}
	slope.Add("trellis", v)
	slope.Note("per cluster: (A(%d svc) − A(%d svc)) / %d; per endpoint: (A(%d×%d) − A(%d×1)) / %d, where A is the idle median of RssAnon (checked) or of VmRSS. "+
		"Config is heap, so it shows in RssAnon; RssFile (the binary's pages) does not grow with config but moves with page reclaim and which code ran, which made VmRSS slopes noisy.",
		hi.services, lo.services, hi.services-lo.services, epN.services, epN.endpoints, epN.services, epN.services*(epN.endpoints-1))
}

// memoryPoint starts a mesh whose client sidecar knows services filler
// services of endpoints endpoints each, waits until the sidecar has them all,
// and measures memory idle and under load. It returns the table values and
// the client's idle medians.
func memoryPoint(ctx context.Context, e *env, services, endpoints int) (map[string]float64, memStat, error) {
	name := fmt.Sprintf("memory-%d-%d", services, endpoints)
	t, err := startTrellis(ctx, e, name, trellisOptions{Fillers: services, FillerEndpoints: endpoints})
	if err != nil {
		return nil, memStat{}, err
	}
	defer t.Close()
	// Config is applied when the last filler cluster shows in the admin API.
	last := fmt.Sprintf("filler-%d.%s.svc.cluster.local", services-1, meshcfg.Namespace)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	err = proc.Poll(wctx, t.client, "client sidecar lists "+last+" in /clusters", func() error {
		resp, err := client.Get(t.admin + "/clusters")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), last) {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		return nil, memStat{}, err
	}
	// Idle is after start-up: the proxy unmaps the pages start-up touched
	// once it is over (--release-start-pages) and says so first. Builds
	// without the release never say it, hence the bound.
	for _, p := range []*proc.Process{t.client, t.server} {
		rctx, rcancel := context.WithTimeout(wctx, startUpWait)
		err := proc.Poll(rctx, p, p.Name()+" releasing its start-up pages", func() error {
			if !p.Logged(startUpOver) {
				return errors.New("not logged yet")
			}
			return nil
		})
		rcancel()
		if err != nil && wctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, memStat{}, err
		}
	}
	v := map[string]float64{"services": float64(services), "endpoints": float64(endpoints)}
	var clientIdle memStat
	for _, r := range []struct {
		role string
		p    *proc.Process
	}{{"client", t.client}, {"server", t.server}} {
		if _, err := settledRSS(wctx, r.p); err != nil {
			return nil, memStat{}, err
		}
		ms, err := idleMemStat(wctx, r.p, idleSamples(e.quick))
		if err != nil {
			return nil, memStat{}, err
		}
		v["idle_"+r.role] = float64(ms.RSS) / mb
		if r.role == "client" {
			clientIdle = ms
			v["idle_client_anon"], v["idle_client_file"] = float64(ms.Anon)/mb, float64(ms.File)/mb
		}
	}
	// Without gc=1: the profile is as of the last GC, and fetching it does
	// not disturb the memory about to be measured under load.
	file := fmt.Sprintf("%s-proxy-heap-%d-%d.prof", e.stampBase(), services, endpoints)
	if err := fetchProfile(wctx, t.admin+"/debug/pprof/heap", filepath.Join(e.results, file)); err == nil {
		v["heap_profile"] = 1
	}
	l := fortio.Load{Target: t.url(meshcfg.PortHTTP), Host: t.host, QPS: 1000, Connections: 16, Duration: e.loadDur, PayloadSize: 1024}
	res, u, err := measured(ctx, e, t, name, l)
	if err != nil {
		return nil, memStat{}, err
	}
	if len(u) == 2 && u[0].OK && u[1].OK {
		v["load_client"], v["load_server"] = float64(u[0].PeakRSS)/mb, float64(u[1].PeakRSS)/mb
		v["load_client_anon"] = float64(u[0].PeakAnon) / mb
		v["cpu_client"] = perKRPS(u[0].VCPU, res.ActualQPS)
	}
	return v, clientIdle, nil
}

// startUpOver is what trellis-proxy logs when start-up is over, right
// before it releases the pages start-up touched; memoryPoint waits for it at
// most startUpWait before measuring idle memory.
const (
	startUpOver = "releasing start-up pages"
	startUpWait = 10 * time.Second
)

// idleMemStat returns the median of n readings of p's memory, 1 s apart.
func idleMemStat(ctx context.Context, p *proc.Process, n int) (memStat, error) {
	samples := make([]memStat, 0, n)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for len(samples) < n {
		ms, err := readMemStat(p.PID())
		if err != nil {
			return memStat{}, err
		}
		samples = append(samples, ms)
		if len(samples) == n {
			break
		}
		select {
		case <-ctx.Done():
			return memStat{}, fmt.Errorf("idle memory of %s: %w", p.Name(), ctx.Err())
		case <-tick.C:
		}
	}
	return medianMemStat(samples), nil
}

// settledRSS returns the RSS of p once two readings 500 ms apart differ by
// less than 1% (bounded by ctx), so start-up allocation has finished.
func settledRSS(ctx context.Context, p *proc.Process) (int64, error) {
	prev, err := procfs.ReadRSS(p.PID())
	if err != nil {
		return 0, err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for range 10 {
		select {
		case <-ctx.Done():
			return prev, nil
		case <-tick.C:
		}
		cur, err := procfs.ReadRSS(p.PID())
		if err != nil {
			return 0, err
		}
		diff := cur - prev
		if diff < 0 {
			diff = -diff
		}
		if diff*100 < prev {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// stampBase is the results file prefix of this run: its stamp, and
// "-quick" for quick runs.
func (e *env) stampBase() string {
	if e.quick {
		return e.stamp + "-quick"
	}
	return e.stamp
}
