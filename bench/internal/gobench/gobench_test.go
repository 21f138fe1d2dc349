package gobench

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleOutput = `goos: linux
goarch: amd64
pkg: github.com/trellis-mesh/trellis/internal/proxy/lb
cpu: AMD EPYC
BenchmarkPick/round_robin-2         	12345678	        95.3 ns/op	       0 B/op	       0 allocs/op
BenchmarkPick/least_request-2       	 1000000	       301 ns/op
PASS
ok  	github.com/trellis-mesh/trellis/internal/proxy/lb	2.1s
pkg: github.com/trellis-mesh/trellis/internal/proxy/httpproxy
BenchmarkForward	   50000	     24000 ns/op	    4096 B/op	      31 allocs/op
--- FAIL: BenchmarkBroken
Benchmark garbage line
`

func TestParse(t *testing.T) {
	got := Parse(sampleOutput)
	want := []Result{
		{Package: "github.com/trellis-mesh/trellis/internal/proxy/lb", Name: "BenchmarkPick/round_robin", Procs: 2, N: 12345678, NsPerOp: 95.3, BytesPerOp: 0, AllocsPerOp: 0},
		{Package: "github.com/trellis-mesh/trellis/internal/proxy/lb", Name: "BenchmarkPick/least_request", Procs: 2, N: 1000000, NsPerOp: 301, BytesPerOp: -1, AllocsPerOp: -1},
		{Package: "github.com/trellis-mesh/trellis/internal/proxy/httpproxy", Name: "BenchmarkForward", Procs: 1, N: 50000, NsPerOp: 24000, BytesPerOp: 4096, AllocsPerOp: 31},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sampleOutput)
	f.Fuzz(func(t *testing.T, out string) {
		for _, r := range Parse(out) {
			if r.Name == "" {
				t.Error("result without a name")
			}
		}
	})
}
