package main

import (
	"context"
	"os/exec"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/gobench"
	"github.com/trellis-mesh/trellis/bench/internal/report"
)

// runGoBench runs the proxy team's Go benchmarks and reports allocations per
// operation next to the end-to-end numbers.
func runGoBench(ctx context.Context, e *env, rep *report.Report) {
	tbl := rep.NewTable("gobench", "Go benchmarks: go test -run '^$' -bench . -benchmem ./internal/proxy/...",
		report.Column{Key: "ns_op", Header: "ns/op", Digits: 0}, report.Column{Key: "b_op", Header: "B/op", Digits: 0},
		report.Column{Key: "allocs_op", Header: "allocs/op", Digits: 0})
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-timeout", "15m"}
	timeout := 20 * time.Minute
	if e.quick {
		args = append(args, "-benchtime", "100ms")
		timeout = 8 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, "./internal/proxy/...")...)
	cmd.Dir = e.root
	out, err := cmd.CombinedOutput()
	results := gobench.Parse(string(out))
	for _, r := range results {
		label := strings.TrimPrefix(r.Package, "github.com/trellis-mesh/trellis/") + " " + r.Name
		v := map[string]float64{"ns_op": r.NsPerOp}
		if r.BytesPerOp >= 0 {
			v["b_op"] = r.BytesPerOp
		}
		if r.AllocsPerOp >= 0 {
			v["allocs_op"] = r.AllocsPerOp
		}
		tbl.Add(label, v)
	}
	if err != nil {
		tbl.Note("go test reported a failure (%v): %s", err, failLines(string(out)))
	}
	if len(results) == 0 {
		tbl.Skip("./internal/proxy/...", "no benchmark results: "+failLines(string(out)))
	}
}

// failLines picks the FAIL and error lines of go test output, at most 3.
func failLines(out string) string {
	var keep []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "FAIL") || strings.Contains(line, "panic:") || strings.Contains(line, ".go:") {
			keep = append(keep, line)
		}
		if len(keep) == 3 {
			break
		}
	}
	if len(keep) == 0 {
		return "no benchmarks found"
	}
	return strings.Join(keep, "; ")
}
