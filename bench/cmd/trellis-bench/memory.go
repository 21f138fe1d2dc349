package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/fortio"
	"github.com/trellis-mesh/trellis/bench/internal/meshcfg"
	"github.com/trellis-mesh/trellis/bench/internal/proc"
	"github.com/trellis-mesh/trellis/bench/internal/procfs"
	"github.com/trellis-mesh/trellis/bench/internal/report"
)

// memorySizes are the service counts known to the client sidecar.
func memorySizes(quick bool) (services []int, endpointsRun [2]int) {
	if quick {
		return []int{10, 50, 100}, [2]int{50, 5}
	}
	return []int{10, 100, 1000}, [2]int{100, 10}
}

// runMemory measures sidecar RSS idle and at 1000 rps with growing config,
// and derives the memory per cluster and per endpoint from the slopes.
func runMemory(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("memory", "Sidecar resident memory (MB), idle and at 1000 rps (16 connections)",
		report.Column{Key: "services", Header: "services"}, report.Column{Key: "endpoints", Header: "endpoints each"},
		report.Column{Key: "idle_client", Header: "client idle", Digits: 1}, report.Column{Key: "load_client", Header: "client at 1000 rps", Digits: 1},
		report.Column{Key: "idle_server", Header: "server idle", Digits: 1}, report.Column{Key: "load_server", Header: "server at 1000 rps", Digits: 1})
	services, epRun := memorySizes(e.quick)
	type point struct{ services, endpoints int }
	points := []point{}
	for _, s := range services {
		points = append(points, point{s, 1})
	}
	points = append(points, point{epRun[0], epRun[1]})
	idle := map[point]float64{}
	for _, pt := range points {
		// The server's own service counts too: fillers are extra.
		label := fmt.Sprintf("trellis %d services × %d endpoints", pt.services, pt.endpoints)
		v, err := memoryPoint(ctx, e, pt.services, pt.endpoints)
		if err != nil {
			tbl.Skip(label, err.Error())
			continue
		}
		idle[pt] = v["idle_client"]
		tbl.Add(label, v)
	}
	slope := rep.NewTable("memory_slope", "Sidecar memory per unit of config (client sidecar, idle RSS slope)",
		report.Column{Key: "kb_per_cluster", Header: "KB per cluster (with 1 endpoint)", Digits: 1},
		report.Column{Key: "kb_per_endpoint", Header: "KB per endpoint", Digits: 2})
	lo, hi := point{services[0], 1}, point{services[len(services)-1], 1}
	ep1, epN := point{epRun[0], 1}, point{epRun[0], epRun[1]}
	v := map[string]float64{}
	if a, ok := idle[lo]; ok {
		if b, ok := idle[hi]; ok {
			v["kb_per_cluster"] = (b - a) * 1024 / float64(hi.services-lo.services)
		}
	}
	if a, ok := idle[ep1]; ok {
		if b, ok := idle[epN]; ok {
			v["kb_per_endpoint"] = (b - a) * 1024 / float64(epN.services*(epN.endpoints-1))
		}
	}
	if len(v) == 0 {
		slope.Skip("trellis", "needs the memory runs above")
		return
	}
	slope.Add("trellis", v)
	slope.Note("per cluster: (RSS(%d svc) − RSS(%d svc)) / %d; per endpoint: (RSS(%d×%d) − RSS(%d×1)) / %d",
		hi.services, lo.services, hi.services-lo.services, epN.services, epN.endpoints, epN.services, epN.services*(epN.endpoints-1))
}

// memoryPoint starts a mesh whose client sidecar knows services filler
// services of endpoints endpoints each, waits until the sidecar has them all,
// and measures RSS idle and under load.
func memoryPoint(ctx context.Context, e *env, services, endpoints int) (map[string]float64, error) {
	name := fmt.Sprintf("memory-%d-%d", services, endpoints)
	t, err := startTrellis(ctx, e, name, trellisOptions{Fillers: services, FillerEndpoints: endpoints})
	if err != nil {
		return nil, err
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
		return nil, err
	}
	v := map[string]float64{"services": float64(services), "endpoints": float64(endpoints)}
	for _, r := range []struct {
		key string
		p   *proc.Process
	}{{"idle_client", t.client}, {"idle_server", t.server}} {
		rss, err := settledRSS(wctx, r.p)
		if err != nil {
			return nil, err
		}
		v[r.key] = float64(rss) / mb
	}
	l := fortio.Load{Target: t.url(meshcfg.PortHTTP), Host: t.host, QPS: 1000, Connections: 16, Duration: e.loadDur, PayloadSize: 1024}
	_, u, err := measured(ctx, e, t, name, l)
	if err != nil {
		return nil, err
	}
	if len(u) == 2 && u[0].OK && u[1].OK {
		v["load_client"], v["load_server"] = float64(u[0].PeakRSS)/mb, float64(u[1].PeakRSS)/mb
	}
	return v, nil
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
