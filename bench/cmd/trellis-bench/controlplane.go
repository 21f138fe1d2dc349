package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/meshcfg"
	"github.com/trellis-mesh/trellis/bench/internal/proc"
	"github.com/trellis-mesh/trellis/bench/internal/procfs"
	"github.com/trellis-mesh/trellis/bench/internal/report"
	"github.com/trellis-mesh/trellis/bench/internal/xdsload"
)

// trellisdLoadAddr is trellisd's address in the control-plane scenario.
var trellisdLoadAddr = netip.MustParseAddr("127.0.155.1")

// cpSize is the control-plane scenario's scale.
type cpSize struct {
	load        meshcfg.Load
	window      int // services per proxy with Sidecar scoping
	changes     int // edits of each kind per setup
	syncTimeout time.Duration
}

func controlPlaneSize(quick bool) cpSize {
	if quick {
		return cpSize{load: meshcfg.Load{Services: 50, Endpoints: 3, Proxies: 20}, window: 5, changes: 2, syncTimeout: 60 * time.Second}
	}
	return cpSize{load: meshcfg.Load{Services: 1000, Endpoints: 10, Proxies: 1000}, window: 10, changes: 5, syncTimeout: 180 * time.Second}
}

var cpCols = []report.Column{
	{Key: "proxies", Header: "proxies"}, {Key: "affected", Header: "affected"},
	{Key: "p50_ms", Header: "ACK p50 ms", Digits: 1}, {Key: "p99_ms", Header: "ACK p99 ms", Digits: 1},
	{Key: "max_ms", Header: "ACK max ms", Digits: 1}, {Key: "missing", Header: "never ACKed"},
	{Key: "kb_per_proxy", Header: "KB per proxy per change", Digits: 2},
	{Key: "changed_kb", Header: "KB changed", Digits: 2},
	{Key: "cpu_s_per_push", Header: "trellisd CPU s per push", Digits: 3},
	{Key: "sync_s", Header: "initial sync s", Digits: 1},
	{Key: "rss_mb", Header: "trellisd RSS MB", Digits: 0}, {Key: "mb_per_proxy", Header: "MB per proxy", Digits: 3},
}

// cpLabel names a control-plane row.
func cpLabel(delta, scoped bool, change string) string {
	proto, scope := "sotw", "no scoping"
	if delta {
		proto = "delta"
	}
	if scoped {
		scope = "Sidecar scoping"
	}
	return fmt.Sprintf("%s, %s, %s change", proto, scope, change)
}

// cpSetupName is a setup's name in BENCH_CP_SETUPS: sotw, delta,
// sotw-scoped, delta-scoped.
func cpSetupName(delta, scoped bool) string {
	name := "sotw"
	if delta {
		name = "delta"
	}
	if scoped {
		name += "-scoped"
	}
	return name
}

// cpSetups parses BENCH_CP_SETUPS, a comma-separated list of setup names;
// nil (empty) runs every setup. Unknown names match nothing.
func cpSetups(env string) map[string]bool {
	if env == "" {
		return nil
	}
	out := map[string]bool{}
	for _, name := range strings.Split(env, ",") {
		out[strings.TrimSpace(name)] = true
	}
	return out
}

// runControlPlane times pushes from trellisd to a fleet of simulated proxies.
func runControlPlane(ctx context.Context, e *env, rep *report.Report) {
	size := controlPlaneSize(e.quick)
	l := size.load
	tbl := rep.NewTable("controlplane", fmt.Sprintf("Control plane: %d simulated proxies (ADS over gRPC), %d services × %d endpoints; time from a file edit until every affected proxy ACKed",
		l.Proxies, l.Services, l.Endpoints), cpCols...)
	tbl.Note("bytes are proto.Size of every response received by the fleet from the edit until quiet, divided by all connected proxies; KB changed is the encoded size of the resource carrying the edit (one ClusterLoadAssignment, one route table); MB per proxy is (RSS with the fleet synced − RSS before it connected) / proxies")
	tbl.Note("Sidecar scoping: each proxy's Sidecar imports %d services, so an edit affects about %d proxies", size.window, l.Proxies*size.window/l.Services)
	counter := 0
	only := cpSetups(os.Getenv("BENCH_CP_SETUPS"))
	if f := os.Getenv("BENCH_CP_TRELLISD_FLAGS"); f != "" {
		tbl.Note("trellisd ran with BENCH_CP_TRELLISD_FLAGS: %s", f)
	}
	for _, scoped := range []bool{false, true} {
		for _, delta := range []bool{false, true} {
			if ctx.Err() != nil {
				return
			}
			if only != nil && !only[cpSetupName(delta, scoped)] {
				continue
			}
			cpSetup(ctx, e, tbl, size, scoped, delta, &counter)
		}
	}
}

func cpSetup(ctx context.Context, e *env, tbl *report.Table, size cpSize, scoped, delta bool, counter *int) {
	labels := []string{cpLabel(delta, scoped, "endpoint"), cpLabel(delta, scoped, "VirtualService")}
	skip := func(reason string) {
		for _, lb := range labels {
			tbl.Skip(lb, reason)
		}
	}
	if r := e.need("trellisd"); r != "" {
		skip(r)
		return
	}
	l := size.load
	if scoped {
		l.Window = size.window
	}
	name := fmt.Sprintf("cp-delta%v-scoped%v", delta, scoped)
	dir := e.dir(name)
	cfg := filepath.Join(dir, "config")
	vsServices := make([]int, size.changes)
	for j := range vsServices {
		vsServices[j] = (j*13 + 3) % l.Services
	}
	if err := l.Write(cfg, vsServices); err != nil {
		skip(err.Error())
		return
	}
	xds := hostPort(trellisdLoadAddr, 15010)
	pprofAddr := hostPort(trellisdLoadAddr, 15016)
	// BENCH_CP_TRELLISD_FLAGS: more trellisd flags, e.g. a GC policy
	// (--gc-percent=50 --memory-limit=1GiB) to compare.
	d, err := proc.Start(proc.Spec{Name: "trellisd", Path: e.trellisd, LogDir: dir, Args: append([]string{
		"--config-dir", cfg, "--data-dir", filepath.Join(dir, "data"), "--xds-addr", xds, "--monitoring-addr", hostPort(trellisdLoadAddr, 15014),
		"--pprof-addr", pprofAddr}, strings.Fields(os.Getenv("BENCH_CP_TRELLISD_FLAGS"))...)})
	if err != nil {
		skip(err.Error())
		return
	}
	defer d.Close()
	wctx, cancel := context.WithTimeout(ctx, size.syncTimeout)
	defer cancel()
	if err := proc.WaitHTTP(wctx, d, "http://"+hostPort(trellisdLoadAddr, 15014)+"/ready"); err != nil {
		skip("trellisd: " + err.Error())
		return
	}
	rss0, err := settledRSS(wctx, d)
	if err != nil {
		skip(err.Error())
		return
	}
	nodes := make([]string, l.Proxies)
	for k := range nodes {
		nodes[k] = meshcfg.NodeID(k)
	}
	fleet := xdsload.New(xdsload.Options{Server: xds, Nodes: nodes, Delta: delta, Logger: e.log})
	runCtx, stopFleet := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fleet.Run(runCtx) }()
	defer func() { stopFleet(); <-done }()
	start := time.Now()
	// peak tracks trellisd's largest RSS seen, reported when it dies (a
	// kernel OOM kill leaves nothing in its log).
	var peak int64
	sample := func() {
		if r, err := procfs.ReadRSS(d.PID()); err == nil {
			peak = max(peak, r)
		}
	}
	died := func() string {
		if exited, err := d.Exited(); exited {
			return fmt.Sprintf("trellisd exited (%v) with %d proxies; largest RSS seen %.0f MB (see %s)", err, l.Proxies,
				float64(peak)/mb, filepath.Join(dir, "trellisd.log"))
		}
		return ""
	}
	if err := fleet.WaitSynced(wctx, 0); err != nil {
		if r := died(); r != "" {
			skip(r)
			return
		}
		skip(fmt.Sprintf("fleet did not sync within %s: %v (see %s)", size.syncTimeout, err, filepath.Join(dir, "trellisd.log")))
		return
	}
	syncTime := time.Since(start)
	if err := fleet.WaitQuiet(wctx, time.Second); err != nil {
		skip(err.Error())
		return
	}
	rss1, err := settledRSS(ctx, d)
	if err != nil {
		skip(err.Error())
		return
	}
	heap := fmt.Sprintf("%s-trellisd-heap-%s.prof", e.stamp, name)
	if err := fetchProfile(ctx, "http://"+pprofAddr+"/debug/pprof/heap?gc=1", filepath.Join(e.results, heap)); err != nil {
		tbl.Note("%s: trellisd heap profile not saved: %v", name, err)
	} else {
		tbl.Note("%s: trellisd heap profile with the fleet synced: bench/results/%s", name, heap)
	}
	common := map[string]float64{"proxies": float64(l.Proxies), "sync_s": syncTime.Seconds(), "rss_mb": float64(rss1) / mb,
		"mb_per_proxy": float64(rss1-rss0) / mb / float64(l.Proxies)}

	edits := []func(j int) (svc int, marker string, apply func() error){
		func(j int) (int, string, func() error) { // move an endpoint
			*counter++
			svc := (j*7 + 1) % l.Services
			addr := meshcfg.Addr(3, *counter).String()
			return svc, addr, func() error { return l.WriteEndpointChange(cfg, svc, addr) }
		},
		func(j int) (int, string, func() error) { // change a VirtualService's header
			*counter++
			svc := vsServices[j]
			mark := fmt.Sprintf("mark-%d-x", *counter)
			return svc, mark, func() error { return l.WriteVirtualService(cfg, svc, mark) }
		},
	}
	var dead string // why trellisd is gone, once it is
	for i, edit := range edits {
		if dead != "" {
			tbl.Skip(labels[i], dead)
			continue
		}
		// A CPU profile of trellisd over (about) the edits of this kind.
		cpuProf := fmt.Sprintf("%s-trellisd-cpu-%s-%s.prof", e.stamp, name, []string{"endpoint", "vs"}[i])
		profDone := make(chan error, 1)
		go func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, 2*size.changes)
			profDone <- fetchProfile(ctx, url, filepath.Join(e.results, cpuProf))
		}()
		var delays []time.Duration
		var missing, affected int
		var bytes, changed int64
		var cpu time.Duration
		for j := range size.changes {
			svc, marker, apply := edit(j)
			who := l.Affected(svc)
			affected += len(who)
			st0, _ := procfs.ReadStat(d.PID())
			b0 := fleet.Bytes()
			w := fleet.Watch([]byte(marker), who)
			if err := apply(); err != nil {
				tbl.Note("%s: edit failed: %v", labels[i], err)
				break
			}
			sample()
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			got, miss := w.Wait(cctx)
			_ = fleet.WaitQuiet(cctx, 300*time.Millisecond)
			ccancel()
			sample()
			if r := died(); r != "" {
				dead = r
				break
			}
			st1, _ := procfs.ReadStat(d.PID())
			delays = append(delays, got...)
			missing += miss
			bytes += fleet.Bytes() - b0
			changed += int64(w.ChangedBytes())
			cpu += st1.CPU - st0.CPU
			if len(got) > 0 {
				e.log.Info("control-plane change", "setup", name, "edit", labels[i], "n", j, "acked", len(got), "missing", miss,
					"p50", quantile(got, 0.5), "max", got[len(got)-1], "cpu", st1.CPU-st0.CPU, "bytes", fleet.Bytes()-b0)
			}
		}
		if err := <-profDone; err != nil {
			tbl.Note("%s: trellisd CPU profile not saved: %v", labels[i], err)
		} else {
			tbl.Note("%s: trellisd CPU profile over the first %d s of the edits: bench/results/%s", labels[i], 2*size.changes, cpuProf)
		}
		if dead != "" {
			tbl.Skip(labels[i], dead)
			continue
		}
		v := map[string]float64{"affected": float64(affected) / float64(size.changes), "missing": float64(missing),
			"kb_per_proxy":   float64(bytes) / 1024 / float64(size.changes) / float64(l.Proxies),
			"changed_kb":     float64(changed) / 1024 / float64(size.changes),
			"cpu_s_per_push": cpu.Seconds() / float64(size.changes)}
		for k, x := range common {
			v[k] = x
		}
		if len(delays) > 0 {
			slices.Sort(delays)
			v["p50_ms"] = ms(quantile(delays, 0.50))
			v["p99_ms"] = ms(quantile(delays, 0.99))
			v["max_ms"] = ms(delays[len(delays)-1])
		}
		tbl.Add(labels[i], v)
	}
}

// fetchProfile saves the pprof profile at url to path.
func fetchProfile(ctx context.Context, url, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return os.WriteFile(path, data, 0o644)
}

// quantile returns the q-quantile (nearest rank) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
