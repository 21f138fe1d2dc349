package gobench

import (
	"fmt"
	"strconv"
	"strings"
)

// Result is one benchmark line. Fields not reported are -1 (B/op and
// allocs/op need -benchmem).
type Result struct {
	Package     string // from the "pkg:" line preceding it; empty when absent
	Name        string // without the -GOMAXPROCS suffix
	Procs       int    // the -N suffix; 1 when absent
	N           int64
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
}

// Parse reads `go test -bench` output and returns every benchmark result in
// order. Lines that are not results (PASS, ok, goos:, logs) are skipped.
func Parse(out string) []Result {
	var res []Result
	pkg := ""
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if r, ok := parseLine(line); ok {
			r.Package = pkg
			res = append(res, r)
		}
	}
	return res
}

// parseLine parses "BenchmarkX-8  1000  123 ns/op  64 B/op  2 allocs/op".
func parseLine(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return Result{}, false
	}
	r := Result{Name: f[0], Procs: 1, BytesPerOp: -1, AllocsPerOp: -1, NsPerOp: -1}
	if i := strings.LastIndexByte(f[0], '-'); i > 0 {
		if p, err := strconv.Atoi(f[0][i+1:]); err == nil {
			r.Name, r.Procs = f[0][:i], p
		}
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Result{}, false
	}
	r.N = n
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		switch f[i+1] {
		case "ns/op":
			r.NsPerOp = v
		case "B/op":
			r.BytesPerOp = v
		case "allocs/op":
			r.AllocsPerOp = v
		}
	}
	if r.NsPerOp < 0 {
		return Result{}, false
	}
	return r, true
}

// String formats r like the go test line.
func (r Result) String() string {
	return fmt.Sprintf("%s-%d %d %.1f ns/op %.0f B/op %.0f allocs/op", r.Name, r.Procs, r.N, r.NsPerOp, r.BytesPerOp, r.AllocsPerOp)
}
