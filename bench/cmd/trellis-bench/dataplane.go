package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/fortio"
	"github.com/trellis-mesh/trellis/bench/internal/meshcfg"
	"github.com/trellis-mesh/trellis/bench/internal/report"
	"github.com/trellis-mesh/trellis/bench/internal/tcpload"
)

// kinds are the two-hop topologies compared side by side. With mTLS on (the
// default), "trellis", "haproxy" and "nginx" speak mutual TLS between their
// hops; plain adds "trellis plaintext" and "haproxy plaintext" rows.
//
// BENCH_KINDS (comma-separated, e.g. "trellis,haproxy") keeps only those
// kinds, for iterating on one proxy; "no mesh" always runs, as the baseline
// of added latency.
func (e *env) kinds(plain bool) []string {
	all := []string{"no mesh", "trellis", "haproxy", "nginx"}
	if e.mtls && plain {
		all = []string{"no mesh", "trellis", "trellis plaintext", "haproxy", "haproxy plaintext", "nginx"}
	}
	only := os.Getenv("BENCH_KINDS")
	if only == "" {
		return all
	}
	keep := strings.Split(only, ",")
	return slices.DeleteFunc(all, func(k string) bool { return k != "no mesh" && !slices.Contains(keep, k) })
}

// startKind starts the two-hop topology of kind.
func startKind(ctx context.Context, e *env, kind, name string) (*topo, error) {
	if r := e.need("fortio"); r != "" {
		return nil, fmt.Errorf("%s", r)
	}
	switch kind {
	case "no mesh":
		return noMesh(), nil
	case "trellis":
		return startTrellis(ctx, e, name, trellisOptions{})
	case "trellis plaintext":
		return startTrellis(ctx, e, name, trellisOptions{Plaintext: true})
	case "haproxy":
		return startHAProxy(ctx, e, name, hopsOptions{})
	case "haproxy plaintext":
		return startHAProxy(ctx, e, name, hopsOptions{Plaintext: true})
	case "nginx":
		return startNginx(ctx, e, name, hopsOptions{})
	}
	return nil, fmt.Errorf("unknown topology %q", kind)
}

// hopNote says what the hop between the two proxies is.
func hopNote(e *env) string {
	if !e.mtls {
		return "Plain text between the hops everywhere (-mtls=false)."
	}
	return "Between the two hops: trellis is automatic mTLS (tlsMode labels, mesh-wide PeerAuthentication STRICT, SVIDs from trellisd's CA; checked before measuring: the server sidecar refuses plain text); haproxy and nginx run mutual TLS (ECDSA P-256 test CA, client certificate required, server name verified). \"plaintext\" rows are the same topology with plain text between the hops."
}

var latencyCols = []report.Column{
	{Key: "p50", Header: "p50 µs", Digits: 0}, {Key: "p90", Header: "p90 µs"}, {Key: "p99", Header: "p99 µs"},
	{Key: "p999", Header: "p99.9 µs"},
	{Key: "added_p50", Header: "+p50 µs"}, {Key: "added_p90", Header: "+p90 µs"}, {Key: "added_p99", Header: "+p99 µs"},
	{Key: "added_p999", Header: "+p99.9 µs"},
	{Key: "qps", Header: "rps", Digits: 0}, {Key: "errors", Header: "errors"},
	{Key: "cpu_client", Header: "client vCPU/krps", Digits: 3}, {Key: "cpu_server", Header: "server vCPU/krps", Digits: 3},
	{Key: "cpu_sidecar", Header: "mean vCPU/krps", Digits: 3},
	{Key: "rss_client", Header: "client RSS MB", Digits: 1}, {Key: "rss_server", Header: "server RSS MB", Digits: 1},
}

// runLatency is Istio's data-plane scenario: 1000 rps, 1 KiB, HTTP/1.1
// keep-alive, 16 and 4 connections, through each topology.
func runLatency(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("latency", "Latency at 1000 rps, 1 KiB payload, HTTP/1.1 keep-alive, two hops (µs; + is added over no mesh)", latencyCols...)
	tbl.Note("CPU is per proxy process tree (nginx master + worker), from /proc/PID/stat utime+stime over the measured run, divided by the achieved krps.")
	tbl.Note("%s", hopNote(e))
	if e.rounds > 1 {
		tbl.Note("Each row is the median of %d rounds; every round runs every kind once, in turn, and added latency is taken against the same round's no mesh.", e.rounds)
	}
	conns := []int{16, 4}
	runHTTPKinds(ctx, e, tbl, "latency", e.kinds(true), conns, func(c int) fortio.Load {
		return fortio.Load{QPS: 1000, Connections: c, Duration: e.loadDur, PayloadSize: 1024}
	}, true, e.rounds)
}

// runHTTPKinds runs load(c) for each connection count through every kind and
// fills tbl, including added latency over no mesh. With rounds > 1 it runs
// every kind once per round (so that a noisy moment of the machine is
// spread over all of them rather than landing on one) and each row is the
// median of its rounds; added latency is taken against the same round's
// no mesh.
func runHTTPKinds(ctx context.Context, e *env, tbl *report.Table, scenario string, kinds []string, conns []int, load func(c int) fortio.Load, profile bool, rounds int) {
	rounds = max(rounds, 1)
	runs := map[string][]map[string]float64{}
	skipped := map[string]string{}
	var order []string
	for r := range rounds {
		base := map[int]map[string]float64{}
		for _, kind := range kinds {
			name := scenario + "-" + strings.ReplaceAll(kind, " ", "")
			if rounds > 1 {
				name += fmt.Sprintf("-r%d", r+1)
			}
			t, err := startKind(ctx, e, kind, name)
			for _, c := range conns {
				label := fmt.Sprintf("%s c=%d", kind, c)
				if r == 0 {
					order = append(order, label)
				}
				if err != nil {
					skipped[label] = err.Error()
					continue
				}
				l := load(c)
				l.Target, l.Host = t.url(meshcfg.PortHTTP), t.host
				res, u, rerr := measured(ctx, e, t, fmt.Sprintf("%s-c%d", name, c), l)
				if rerr == nil && profile && kind == "trellis" && c == conns[0] && r == rounds-1 {
					profiledRun(ctx, e, t, tbl, fmt.Sprintf("%s-c%d-profiled", name, c), l)
				}
				if rerr != nil {
					skipped[label] = rerr.Error()
					continue
				}
				v := latencyValues(res)
				if kind == "no mesh" {
					base[c] = v
				} else if b := base[c]; b != nil {
					for _, p := range fortio.Percentiles {
						v["added_"+pctKey(p)] = v[pctKey(p)] - b[pctKey(p)]
					}
				}
				addUsage(v, u, res.ActualQPS)
				runs[label] = append(runs[label], v)
			}
			if t != nil {
				t.Close()
			}
		}
	}
	for _, label := range order {
		if vs := runs[label]; len(vs) > 0 {
			tbl.Add(label, medianValues(vs))
		} else {
			tbl.Skip(label, skipped[label])
		}
	}
}

// medianValues returns, for every key of vs, the median of its values (the
// mean of the middle two for an even count).
func medianValues(vs []map[string]float64) map[string]float64 {
	all := map[string][]float64{}
	for _, v := range vs {
		for k, x := range v {
			all[k] = append(all[k], x)
		}
	}
	out := make(map[string]float64, len(all))
	for k, xs := range all {
		slices.Sort(xs)
		n := len(xs)
		if n%2 == 1 {
			out[k] = xs[n/2]
		} else {
			out[k] = (xs[n/2-1] + xs[n/2]) / 2
		}
	}
	return out
}

// addUsage adds per-proxy CPU (vCPU per krps) and RSS (MB) to v.
func addUsage(v map[string]float64, u []usage, qps float64) {
	roles := []string{"client", "server"}
	if len(u) == 1 {
		roles = []string{"server"}
	}
	var sum float64
	n := 0
	for i, x := range u {
		if !x.OK || i >= len(roles) {
			continue
		}
		v["cpu_"+roles[i]] = perKRPS(x.VCPU, qps)
		v["rss_"+roles[i]] = float64(x.RSS) / mb
		sum += v["cpu_"+roles[i]]
		n++
	}
	if n > 0 {
		v["cpu_sidecar"] = sum / float64(n)
	}
}

// profiledRun runs l once more, unmeasured, while profileProxy samples the
// client sidecar: SIGPROF sampling costs the profiled process CPU and tail
// latency (HAProxy and nginx run unprofiled), so profiles never come from the
// run whose numbers the table shows (issue 5).
func profiledRun(ctx context.Context, e *env, t *topo, tbl *report.Table, name string, l fortio.Load) {
	stop := profileProxy(ctx, e, t, tbl, l.Duration, l.Connections)
	_, err := fortio.Run(ctx, e.fortio, e.dir("fortio"), name, l)
	stop()
	if err != nil {
		tbl.Note("profiled run %s: %v", name, err)
	}
}

// profileProxy fetches a CPU profile of the client sidecar over the next d (a
// run of conns connections) and a heap/allocs profile at the end. It returns a
// function that waits for the fetch; failures become table notes.
func profileProxy(ctx context.Context, e *env, t *topo, tbl *report.Table, d time.Duration, conns int) func() {
	secs := max(int(d.Seconds())-1, 1)
	base := e.stamp
	if e.quick {
		base += "-quick"
	}
	fetch := func(path, file string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.admin+path, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(e.results, base+"-"+file), data, 0o644)
	}
	var wg sync.WaitGroup
	var cpuErr error
	wg.Go(func() { cpuErr = fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), "proxy-cpu.prof") })
	return func() {
		wg.Wait()
		allocErr := fetch("/debug/pprof/allocs", "proxy-allocs.prof")
		if cpuErr != nil || allocErr != nil {
			tbl.Note("proxy profiles: not saved: trellis-proxy admin %s/debug/pprof: cpu: %v; allocs: %v (the proxy should serve net/http/pprof on its admin port)", t.admin, cpuErr, allocErr)
			return
		}
		tbl.Note("proxy profiles (client sidecar, from an extra unmeasured c=%d run after the measured ones, so sampling does not touch the numbers above): bench/results/%s-proxy-cpu.prof, %s-proxy-allocs.prof", conns, base, base)
	}
}

// runSaturation pins one proxy to one core and drives it as fast as it goes,
// against HAProxy nbthread 1 and nginx with one worker on the same core.
func runSaturation(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("saturation", "Saturation: one proxy on one core (core 1), load generator and app on core 0, 1 KiB, 16 connections",
		report.Column{Key: "qps", Header: "rps", Digits: 0}, report.Column{Key: "p50", Header: "p50 µs"},
		report.Column{Key: "p99", Header: "p99 µs"}, report.Column{Key: "errors", Header: "errors"},
		report.Column{Key: "vcpu", Header: "proxy vCPU", Digits: 2})
	tbl.Note("one hop (the server-side proxy), so plain text for every proxy: fortio, the client, holds no mesh identity")
	rows := []string{"no mesh (ceiling)", "trellis GOMAXPROCS=1", "haproxy nbthread 1", "nginx 1 worker"}
	if runtime.NumCPU() < 2 {
		for _, r := range rows {
			tbl.Skip(r, "needs at least 2 cores")
		}
		return
	}
	if r := e.need("fortio"); r != "" {
		for _, row := range rows {
			tbl.Skip(row, r)
		}
		return
	}
	if err := e.app.pin(ctx, "0"); err != nil {
		tbl.Note("app not pinned: %v", err)
	}
	defer e.app.pin(ctx, fmt.Sprintf("0-%d", runtime.NumCPU()-1))
	for i, row := range rows {
		var t *topo
		var err error
		switch i {
		case 0:
			t = noMesh()
		case 1:
			t, err = startTrellis(ctx, e, "saturation-trellis", trellisOptions{NoClient: true, ServerCPUs: "1", ServerGOMAXPROCS: 1})
		case 2:
			t, err = startHAProxy(ctx, e, "saturation-haproxy", hopsOptions{Single: true, Threads: 1, CPUs: "1"})
		case 3:
			t, err = startNginx(ctx, e, "saturation-nginx", hopsOptions{Single: true, Threads: 1, CPUs: "1"})
		}
		if err != nil {
			tbl.Skip(row, err.Error())
			continue
		}
		l := fortio.Load{Target: t.url(meshcfg.PortHTTP), Host: t.host, QPS: 0, Connections: 16, Duration: e.loadDur, PayloadSize: 1024, CPUs: "0"}
		res, u, err := measured(ctx, e, t, "saturation-"+strings.Fields(row)[0], l)
		t.Close()
		if err != nil {
			tbl.Skip(row, err.Error())
			continue
		}
		v := map[string]float64{"qps": res.ActualQPS, "errors": float64(res.Errors()),
			"p50": float64(res.Latency[50].Nanoseconds()) / 1e3, "p99": float64(res.Latency[99].Nanoseconds()) / 1e3}
		if len(u) > 0 && u[0].OK {
			v["vcpu"] = u[0].VCPU
		}
		tbl.Add(row, v)
	}
}

// runGRPC sends gRPC pings through two hops: unary calls on 16 connections
// and 8 concurrent streams multiplexed on each of 2 connections, at 1000 rps.
func runGRPC(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("grpc", "gRPC ping through two hops at 1000 rps, 1 KiB payload (µs; + is added over no mesh)",
		report.Column{Key: "p50", Header: "p50 µs"}, report.Column{Key: "p99", Header: "p99 µs"},
		report.Column{Key: "added_p50", Header: "+p50 µs"}, report.Column{Key: "added_p99", Header: "+p99 µs"},
		report.Column{Key: "qps", Header: "rps"}, report.Column{Key: "errors", Header: "errors"},
		report.Column{Key: "cpu_sidecar", Header: "mean vCPU/krps", Digits: 3})
	shapes := []struct {
		name           string
		conns, streams int
	}{{"unary c=16", 16, 1}, {"streams c=2 s=8", 2, 8}}
	tbl.Note("%s", hopNote(e))
	base := map[string]map[string]float64{}
	for _, kind := range e.kinds(false) {
		t, err := startKind(ctx, e, kind, "grpc-"+strings.ReplaceAll(kind, " ", ""))
		for _, s := range shapes {
			label := kind + " " + s.name
			if err != nil {
				tbl.Skip(label, err.Error())
				continue
			}
			l := fortio.Load{Target: t.addr(meshcfg.PortGRPC), Host: t.host, GRPC: true, QPS: 1000,
				Connections: s.conns, Streams: s.streams, Duration: e.loadDur, PayloadSize: 1024}
			res, u, rerr := measured(ctx, e, t, "grpc-"+strings.ReplaceAll(label, " ", "-"), l)
			if rerr != nil {
				tbl.Skip(label, rerr.Error())
				continue
			}
			v := latencyValues(res)
			if kind == "no mesh" {
				base[s.name] = v
			} else if b := base[s.name]; b != nil {
				v["added_p50"], v["added_p99"] = v["p50"]-b["p50"], v["p99"]-b["p99"]
			}
			addUsage(v, u, res.ActualQPS)
			tbl.Add(label, v)
		}
		if t != nil {
			t.Close()
		}
	}
}

// runTCP measures TCP throughput through one proxy (the server-side hop) with
// 4 connections writing 64 KiB chunks.
func runTCP(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("tcp", "TCP throughput through one proxy, 4 connections, 64 KiB writes",
		report.Column{Key: "mbps", Header: "MB/s", Digits: 0}, report.Column{Key: "vcpu", Header: "proxy vCPU", Digits: 2})
	for _, kind := range []string{"no mesh", "trellis", "haproxy"} {
		var t *topo
		var err error
		switch {
		case e.app == nil:
			err = fmt.Errorf("%s", e.need("fortio"))
		case kind == "no mesh":
			t = noMesh()
		case kind == "trellis":
			t, err = startTrellis(ctx, e, "tcp-trellis", trellisOptions{NoClient: true})
		default:
			t, err = startHAProxy(ctx, e, "tcp-haproxy", hopsOptions{Single: true})
		}
		if err != nil {
			tbl.Skip(kind, err.Error())
			continue
		}
		before := e.app.sink.Bytes()
		m := startMeter(t.proxies())
		start := time.Now()
		_, err = tcpload.Send(ctx, t.addr(meshcfg.PortTCP), 4, 64<<10, e.loadDur)
		elapsed := time.Since(start)
		u := m.Stop()
		got := e.app.sink.Bytes() - before
		t.Close()
		if err != nil && got == 0 {
			tbl.Skip(kind, err.Error())
			continue
		}
		v := map[string]float64{"mbps": float64(got) / mb / elapsed.Seconds()}
		if len(u) > 0 && u[0].OK {
			v["vcpu"] = u[0].VCPU
		}
		tbl.Add(kind, v)
	}
	tbl.Note("one hop, plain text (the client holds no mesh identity)")
	tbl.Note("nginx is not measured here: Debian ships its stream (TCP) module as a separate dynamic module")
}
