package lb

import (
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func ep(host string, weight uint32, healthy bool) runtime.Endpoint {
	return runtime.Endpoint{Host: host, Port: 80, Weight: weight, Healthy: healthy}
}

func count(p Picker, n int) map[string]int {
	got := map[string]int{}
	for range n {
		r, ok := p.Pick()
		if !ok {
			got["<none>"]++
			continue
		}
		got[r.Endpoint.Host]++
		r.Done()
	}
	return got
}

func TestRoundRobinExactDistribution(t *testing.T) {
	tests := []struct {
		name string
		eps  []runtime.Endpoint
		n    int
		want map[string]int
	}{
		{
			name: "equal weights",
			eps:  []runtime.Endpoint{ep("a", 1, true), ep("b", 1, true), ep("c", 1, true)},
			n:    300,
			want: map[string]int{"a": 100, "b": 100, "c": 100},
		},
		{
			name: "weighted 1:2:7",
			eps:  []runtime.Endpoint{ep("a", 10, true), ep("b", 20, true), ep("c", 70, true)},
			n:    1000,
			want: map[string]int{"a": 100, "b": 200, "c": 700},
		},
		{
			name: "unhealthy skipped",
			eps:  []runtime.Endpoint{ep("a", 1, true), ep("b", 5, false), ep("c", 3, true)},
			n:    400,
			want: map[string]int{"a": 100, "c": 300},
		},
		{
			name: "zero weight counts as one",
			eps:  []runtime.Endpoint{ep("a", 0, true), ep("b", 1, true)},
			n:    10,
			want: map[string]int{"a": 5, "b": 5},
		},
		{
			name: "no healthy endpoint",
			eps:  []runtime.Endpoint{ep("a", 1, false)},
			n:    3,
			want: map[string]int{"<none>": 3},
		},
		{
			name: "no endpoints",
			n:    2,
			want: map[string]int{"<none>": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(&runtime.Cluster{Name: "c", LB: runtime.RoundRobin, Endpoints: tt.eps})
			if diff := cmp.Diff(tt.want, count(p, tt.n)); diff != "" {
				t.Errorf("distribution (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundRobinSmooth(t *testing.T) {
	// Weights 5:1:1 interleave as a a b a c a a; naive WRR would run "a"
	// five times in a row, and ten across a period boundary.
	p := New(&runtime.Cluster{LB: runtime.RoundRobin, Endpoints: []runtime.Endpoint{
		ep("a", 5, true), ep("b", 1, true), ep("c", 1, true),
	}})
	run, maxRun := 0, 0
	for range 70 {
		r, _ := p.Pick()
		if r.Endpoint.Host == "a" {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 0
		}
	}
	if maxRun > 4 {
		t.Errorf("longest run of the heavy endpoint = %d, want <= 4", maxRun)
	}
}

func TestPriority(t *testing.T) {
	// A fully healthy priority 0 takes all the load (see TestPriorityLoad
	// for spill-over).
	eps := []runtime.Endpoint{ep("p1", 1, true), ep("p0", 1, true)}
	eps[0].Priority = 1
	for _, policy := range []runtime.LBPolicy{runtime.RoundRobin, runtime.LeastRequest, runtime.Random} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			p := New(&runtime.Cluster{LB: policy, Endpoints: eps})
			if diff := cmp.Diff(map[string]int{"p0": 20}, count(p, 20)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		name string
		eps  []runtime.Endpoint
		want map[string]float64
	}{
		{"equal", []runtime.Endpoint{ep("a", 1, true), ep("b", 1, true)}, map[string]float64{"a": .5, "b": .5}},
		{"weighted", []runtime.Endpoint{ep("a", 1, true), ep("b", 3, true)}, map[string]float64{"a": .25, "b": .75}},
		{"one", []runtime.Endpoint{ep("a", 1, true)}, map[string]float64{"a": 1}},
	}
	const n = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := count(New(&runtime.Cluster{LB: runtime.Random, Endpoints: tt.eps}), n)
			for host, frac := range tt.want {
				if f := float64(got[host]) / n; math.Abs(f-frac) > 0.03 {
					t.Errorf("host %s share = %.3f, want %.2f±0.03", host, f, frac)
				}
			}
		})
	}
}

func TestLeastRequestAvoidsBusyHost(t *testing.T) {
	p := New(&runtime.Cluster{LB: runtime.LeastRequest, Endpoints: []runtime.Endpoint{
		ep("busy", 1, true), ep("b", 1, true), ep("c", 1, true),
	}})
	// Load "busy" with 100 outstanding requests (it is hosts[0]).
	lr := p.(*picker).levels[0].hosts.(*leastRequest)
	busy := Result{active: &lr.active[0].n}
	lr.active[0].n.Store(100)
	got := count(p, 1000)
	// busy is picked only when both random choices land on it, which
	// cannot happen (the two choices are distinct).
	if got["busy"] != 0 {
		t.Errorf("busy host picked %d times, want 0", got["busy"])
	}
	for range 100 {
		busy.Done()
	}
	got = count(p, 3000)
	for _, h := range []string{"busy", "b", "c"} {
		if got[h] < 700 {
			t.Errorf("after release host %s picked %d/3000 times, want about 1000", h, got[h])
		}
	}
}

func TestLeastRequestWeights(t *testing.T) {
	// With no load, weight decides between the two choices: heavier wins.
	p := New(&runtime.Cluster{LB: runtime.LeastRequest, Endpoints: []runtime.Endpoint{
		ep("light", 1, true), ep("heavy", 4, true),
	}})
	got := count(p, 100)
	if got["heavy"] != 100 {
		t.Errorf("heavy picked %d/100 with zero load, want 100", got["heavy"])
	}
}

func TestScheduleScalesLargeWeights(t *testing.T) {
	var hosts []host
	for i := range 50 {
		hosts = append(hosts, host{weight: uint64(1000 + i)})
	}
	s := schedule(hosts)
	if len(s) > maxSchedule+len(hosts) {
		t.Fatalf("schedule length %d exceeds bound", len(s))
	}
	seen := map[uint32]bool{}
	for _, i := range s {
		seen[i] = true
	}
	if len(seen) != len(hosts) {
		t.Errorf("schedule covers %d hosts, want %d", len(seen), len(hosts))
	}
}

func TestBuild(t *testing.T) {
	ps := Build(map[string]*runtime.Cluster{
		"a": {Name: "a", Endpoints: []runtime.Endpoint{ep("127.0.0.1", 1, true)}},
		"b": {Name: "b"},
	})
	if r, ok := ps["a"].Pick(); !ok || r.Addr != "127.0.0.1:80" {
		t.Errorf("a: Pick() = %+v, %v; want 127.0.0.1:80", r, ok)
	}
	if _, ok := ps["b"].Pick(); ok {
		t.Errorf("b: Pick() ok, want no endpoint")
	}
}

func benchEndpoints(n int, weighted bool) []runtime.Endpoint {
	eps := make([]runtime.Endpoint, n)
	for i := range eps {
		w := uint32(1)
		if weighted {
			w = uint32(1 + i%7)
		}
		eps[i] = runtime.Endpoint{Host: fmt.Sprintf("127.0.1.%d", i), Port: 80, Weight: w, Healthy: true}
	}
	return eps
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []struct {
		name string
		lb   runtime.LBPolicy
	}{{"round_robin", runtime.RoundRobin}, {"least_request", runtime.LeastRequest}, {"random", runtime.Random}} {
		for _, weighted := range []bool{false, true} {
			name := fmt.Sprintf("%s/weighted=%v", policy.name, weighted)
			b.Run(name, func(b *testing.B) {
				p := New(&runtime.Cluster{LB: policy.lb, Endpoints: benchEndpoints(16, weighted)})
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r, _ := p.Pick()
						r.Done()
					}
				})
			})
		}
	}
}
