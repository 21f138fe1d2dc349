package main

import (
	"fmt"

	"github.com/trellis-mesh/trellis/bench/internal/report"
)

// checks evaluates issue 5's targets on this run's numbers.
func checks(rep *report.Report) []report.Check {
	val := rep.Value
	var out []report.Check

	// Latency: added p99 of two Trellis sidecars vs two HAProxy hops.
	for _, c := range []int{16, 4} {
		tr, okT := val("latency", fmt.Sprintf("trellis c=%d", c), "added_p99")
		hp, okH := val("latency", fmt.Sprintf("haproxy c=%d", c), "added_p99")
		out = append(out, report.Ratio(fmt.Sprintf("added p99 at 1000 rps, c=%d: Trellis / HAProxy", c), tr, hp, okT, okH, report.AtMost, 1.2))
	}
	// CPU per sidecar, absolute and relative to HAProxy (c=16 run).
	if cpu, ok := val("latency", "trellis c=16", "cpu_sidecar"); ok {
		out = append(out, report.Evaluate("sidecar CPU at 1000 rps (vCPU per 1000 rps)", cpu, report.AtMost, 0.10, ""))
	} else {
		out = append(out, report.Skipped("sidecar CPU at 1000 rps (vCPU per 1000 rps)", report.AtMost, 0.10, "", "latency run for trellis c=16 missing"))
	}
	tc, okT := val("latency", "trellis c=16", "cpu_sidecar")
	hc, okH := val("latency", "haproxy c=16", "cpu_sidecar")
	out = append(out, report.Ratio("sidecar CPU: Trellis / HAProxy", tc, hc, okT, okH, report.AtMost, 1.3))
	// One-core saturation.
	ts, okT := val("saturation", "trellis GOMAXPROCS=1", "qps")
	hs, okH := val("saturation", "haproxy nbthread 1", "qps")
	out = append(out, report.Ratio("one-core saturation: Trellis / HAProxy", ts, hs, okT, okH, report.AtLeast, 0.75))
	// Memory.
	_, epRun := memorySizes(rep.Quick)
	mid := fmt.Sprintf("trellis %d services × 1 endpoints", epRun[0])
	out = append(out, absolute(rep, "memory", mid, "load_client", fmt.Sprintf("sidecar RSS at 1000 rps with %d services (MB)", epRun[0]), report.AtMost, 20, " MB"))
	out = append(out, absolute(rep, "memory", mid, "idle_client", fmt.Sprintf("sidecar RSS idle with %d services (MB)", epRun[0]), report.AtMost, 15, " MB"))
	out = append(out, absolute(rep, "memory_slope", "trellis", "kb_per_endpoint", "sidecar memory per endpoint (KB)", report.AtMost, 2, " KB"))
	out = append(out, absolute(rep, "memory_slope", "trellis", "kb_per_cluster", "sidecar memory per cluster (KB)", report.AtMost, 20, " KB"))
	// Control plane.
	size := controlPlaneSize(rep.Quick)
	for _, delta := range []bool{false, true} {
		row := cpLabel(delta, false, "endpoint")
		name := fmt.Sprintf("%s: p99 time to ACK with %d proxies (ms)", row, size.load.Proxies)
		c := absolute(rep, "controlplane", row, "p99_ms", name, report.AtMost, 1000, " ms")
		if miss, ok := val("controlplane", row, "missing"); ok && miss > 0 && c.Status == report.Pass {
			c.Status, c.Detail = report.Fail, fmt.Sprintf("%.0f proxy ACKs never arrived; %s", miss, c.Detail)
		}
		out = append(out, c)
	}
	worst, okW := 0.0, false
	for _, scoped := range []bool{false, true} {
		for _, delta := range []bool{false, true} {
			if v, ok := val("controlplane", cpLabel(delta, scoped, "endpoint"), "mb_per_proxy"); ok {
				worst, okW = max(worst, v), true
			}
		}
	}
	if okW {
		out = append(out, report.Evaluate("trellisd memory per connected proxy (MB, worst setup)", worst, report.AtMost, 0.5, " MB"))
	} else {
		out = append(out, report.Skipped("trellisd memory per connected proxy (MB, worst setup)", report.AtMost, 0.5, " MB", "control-plane runs missing"))
	}
	// Without scoping every proxy is affected, so bytes per proxy are bytes
	// per affected proxy; what changed is one ClusterLoadAssignment.
	row := cpLabel(true, false, "endpoint")
	db, okD := val("controlplane", row, "kb_per_proxy")
	cb, okC := val("controlplane", row, "changed_kb")
	out = append(out, report.Ratio("delta sends only what changed: delta bytes per proxy per endpoint change / encoded size of the changed ClusterLoadAssignment", db, cb, okD, okC, report.AtMost, 2))
	return out
}

// absolute checks one value against a fixed limit, or skips when missing.
func absolute(rep *report.Report, table, row, key, name string, op report.Op, limit float64, unit string) report.Check {
	v, ok := rep.Value(table, row, key)
	if !ok {
		return report.Skipped(name, op, limit, unit, fmt.Sprintf("%s %q not measured", table, row))
	}
	return report.Evaluate(name, v, op, limit, unit)
}
