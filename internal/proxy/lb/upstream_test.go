package lb

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func prioEP(host string, prio uint32, healthy bool) runtime.Endpoint {
	e := ep(host, 1, healthy)
	e.Priority = prio
	return e
}

// shares picks n times and returns each host's share.
func shares(p Picker, n int) map[string]float64 {
	out := map[string]float64{}
	for host, c := range count(p, n) {
		out[host] = float64(c) / float64(n)
	}
	return out
}

func approx(t *testing.T, got, want map[string]float64, tol float64) {
	t.Helper()
	for k, w := range want {
		if math.Abs(got[k]-w) > tol {
			t.Errorf("share of %s = %.3f, want %.2f±%.2f (all: %v)", k, got[k], w, tol, got)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected host %s picked (share %.3f)", k, got[k])
		}
	}
}

func TestPriorityLoad(t *testing.T) {
	tests := []struct {
		name    string
		eps     []runtime.Endpoint
		ejected []string
		panic   float64
		want    map[string]float64
	}{
		{
			name: "healthy p0 takes everything",
			eps:  []runtime.Endpoint{prioEP("a", 0, true), prioEP("b", 0, true), prioEP("z", 1, true)},
			want: map[string]float64{"a": .5, "b": .5},
		},
		{
			// 1 of 2 healthy: health 1.4 × 50% = 70%, the rest spills to p1.
			name: "half healthy p0 spills 30 percent",
			eps:  []runtime.Endpoint{prioEP("a", 0, true), prioEP("b", 0, false), prioEP("z", 1, true)},
			want: map[string]float64{"a": .7, "z": .3},
		},
		{
			// 4 of 5 healthy: 1.4 × 80% caps at 100%: no spill.
			name: "overprovisioning absorbs one of five",
			eps: []runtime.Endpoint{
				prioEP("a", 0, true), prioEP("b", 0, true), prioEP("c", 0, true), prioEP("d", 0, true),
				prioEP("e", 0, false), prioEP("z", 1, true),
			},
			want: map[string]float64{"a": .25, "b": .25, "c": .25, "d": .25},
		},
		{
			name: "p0 all down fails over",
			eps:  []runtime.Endpoint{prioEP("a", 0, false), prioEP("z", 1, true), prioEP("y", 2, true)},
			want: map[string]float64{"z": 1},
		},
		{
			name:    "ejected host counts as unhealthy",
			eps:     []runtime.Endpoint{prioEP("a", 0, true), prioEP("b", 0, true), prioEP("z", 1, true)},
			ejected: []string{"b:80"},
			want:    map[string]float64{"a": .7, "z": .3},
		},
		{
			// One level, 1 of 3 healthy (33% < 50%): panic routes to all
			// EDS-healthy hosts, the ejected ones too.
			name:    "panic includes ejected hosts",
			eps:     []runtime.Endpoint{prioEP("a", 0, true), prioEP("b", 0, true), prioEP("c", 0, true)},
			ejected: []string{"b:80", "c:80"},
			want:    map[string]float64{"a": 1.0 / 3, "b": 1.0 / 3, "c": 1.0 / 3},
		},
		{
			name:    "panic disabled keeps ejections",
			eps:     []runtime.Endpoint{prioEP("a", 0, true), prioEP("b", 0, true), prioEP("c", 0, true)},
			ejected: []string{"b:80", "c:80"},
			panic:   runtime.PanicDisabled,
			want:    map[string]float64{"a": 1},
		},
		{
			name:    "everything ejected, panic disabled: nothing",
			eps:     []runtime.Endpoint{prioEP("a", 0, true)},
			ejected: []string{"a:80"},
			panic:   runtime.PanicDisabled,
			want:    map[string]float64{"<none>": 1},
		},
		{
			name:    "everything ejected: panic on the first level",
			eps:     []runtime.Endpoint{prioEP("a", 0, true), prioEP("z", 1, true)},
			ejected: []string{"a:80", "z:80"},
			want:    map[string]float64{"a": 1},
		},
		{
			name: "EDS-unhealthy hosts never get traffic, even in panic",
			eps:  []runtime.Endpoint{prioEP("a", 0, false), prioEP("b", 0, false)},
			want: map[string]float64{"<none>": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ej := map[string]bool{}
			for _, a := range tc.ejected {
				ej[a] = true
			}
			c := &runtime.Cluster{Endpoints: tc.eps, LBConfig: runtime.LBConfig{PanicThreshold: tc.panic}}
			approx(t, shares(NewWith(c, Options{Ejected: ej}), 20000), tc.want, 0.03)
		})
	}
}

func TestSkipPriorities(t *testing.T) {
	// Istio's retryRemoteLocalities: a retry avoids the level already tried.
	c := &runtime.Cluster{Endpoints: []runtime.Endpoint{prioEP("a", 0, true), prioEP("z", 1, true)}}
	p := New(c).(Chooser)
	for range 100 {
		r, ok := p.Choose(Choice{SkipPriorities: 1})
		if !ok || r.Endpoint.Host != "z" {
			t.Fatalf("Choose(skip p0) = %+v, %v; want z", r.Endpoint, ok)
		}
		r.Done()
	}
	// Skipping every level falls back to the normal loads.
	if r, ok := p.Choose(Choice{SkipPriorities: 3}); !ok || r.Endpoint.Host != "a" {
		t.Errorf("Choose(skip all) = %+v, %v; want a", r.Endpoint, ok)
	}
}

func TestLocalityWeighted(t *testing.T) {
	loc := func(e runtime.Endpoint, zone string, w uint32) runtime.Endpoint {
		e.Locality = runtime.Locality{Region: "r", Zone: zone}
		e.LocalityWeight = w
		return e
	}
	tests := []struct {
		name string
		eps  []runtime.Endpoint
		want map[string]float64
	}{
		{
			name: "weights 80/20 regardless of host counts",
			eps: []runtime.Endpoint{
				loc(ep("a1", 1, true), "a", 80), loc(ep("a2", 1, true), "a", 80), loc(ep("a3", 1, true), "a", 80),
				loc(ep("b1", 1, true), "b", 20),
			},
			want: map[string]float64{"a1": .8 / 3, "a2": .8 / 3, "a3": .8 / 3, "b1": .2},
		},
		{
			// Zone a: 1 of 4 healthy → effective 80 × min(1, 1.4 × 25%) = 28.
			name: "unhealthy locality loses weight",
			eps: []runtime.Endpoint{
				loc(ep("a1", 1, true), "a", 80), loc(ep("a2", 1, false), "a", 80), loc(ep("a3", 1, false), "a", 80), loc(ep("a4", 1, false), "a", 80),
				loc(ep("b1", 1, true), "b", 20),
			},
			want: map[string]float64{"a1": 28.0 / 48, "b1": 20.0 / 48},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, policy := range []runtime.LBPolicy{runtime.RoundRobin, runtime.LeastRequest, runtime.Random} {
				c := &runtime.Cluster{LB: policy, Endpoints: tc.eps, LBConfig: runtime.LBConfig{LocalityWeighted: true}}
				approx(t, shares(New(c), 20000), tc.want, 0.03)
			}
		})
	}
}

func hashEndpoints(n int) []runtime.Endpoint {
	eps := make([]runtime.Endpoint, n)
	for i := range eps {
		eps[i] = runtime.Endpoint{Host: fmt.Sprintf("127.0.1.%d", i+1), Port: 80, Weight: 1, Healthy: true}
	}
	return eps
}

func TestConsistentHash(t *testing.T) {
	for _, policy := range []struct {
		name string
		lb   runtime.LBPolicy
	}{{"ring_hash", runtime.RingHash}, {"maglev", runtime.Maglev}} {
		t.Run(policy.name, func(t *testing.T) {
			eps := hashEndpoints(5)
			p := New(&runtime.Cluster{LB: policy.lb, Endpoints: eps}).(Chooser)
			// 1. A key always lands on one endpoint.
			first := map[uint64]string{}
			for k := range uint64(200) {
				h := k * 0x9e3779b97f4a7c15
				for range 5 {
					r, ok := p.Choose(Choice{Hash: h, HasHash: true})
					if !ok {
						t.Fatal("no pick")
					}
					if prev, seen := first[h]; seen && prev != r.Addr {
						t.Fatalf("key %d moved from %s to %s", k, prev, r.Addr)
					}
					first[h] = r.Addr
				}
			}
			// 2. Keys spread over every endpoint, roughly evenly.
			got := map[string]int{}
			for k := range uint64(20000) {
				r, _ := p.Choose(Choice{Hash: k * 0x9e3779b97f4a7c15, HasHash: true})
				got[r.Addr]++
			}
			for _, e := range eps {
				if n := got[e.Address()]; n < 20000/5*6/10 || n > 20000/5*14/10 {
					t.Errorf("%s got %d of 20000 keys, want about 4000", e.Address(), n)
				}
			}
			// 3. Ejecting one endpoint moves only its keys.
			ej := map[string]bool{eps[2].Address(): true}
			p2 := NewWith(&runtime.Cluster{LB: policy.lb, Endpoints: eps, LBConfig: runtime.LBConfig{PanicThreshold: runtime.PanicDisabled}}, Options{Ejected: ej}).(Chooser)
			moved := 0
			for h, addr := range first {
				r, _ := p2.Choose(Choice{Hash: h, HasHash: true})
				if addr != eps[2].Address() && r.Addr != addr {
					moved++
				}
				if r.Addr == eps[2].Address() {
					t.Fatalf("ejected endpoint picked")
				}
			}
			if max := len(first) / 10; moved > max {
				t.Errorf("%d keys of surviving endpoints moved, want at most %d", moved, max)
			}
		})
	}
}

func TestWeightedHash(t *testing.T) {
	for _, policy := range []runtime.LBPolicy{runtime.RingHash, runtime.Maglev} {
		eps := []runtime.Endpoint{ep("a", 1, true), ep("b", 3, true)}
		p := New(&runtime.Cluster{LB: policy, Endpoints: eps})
		approx(t, shares(p, 40000), map[string]float64{"a": .25, "b": .75}, 0.05)
	}
}

func TestLeastRequestChoiceCount(t *testing.T) {
	// With many choices the idle host is nearly always among them.
	eps := hashEndpoints(8)
	p := New(&runtime.Cluster{LB: runtime.LeastRequest, Endpoints: eps, LBConfig: runtime.LBConfig{ChoiceCount: 8}})
	lr := p.(*picker).levels[0].hosts.(*leastRequest)
	for i := 1; i < len(eps); i++ {
		lr.active[i].n.Store(10)
	}
	got := count(p, 1000)
	if got["127.0.1.1"] < 600 {
		t.Errorf("idle host picked %d/1000 times with 8 choices, want most", got["127.0.1.1"])
	}
}

func TestOriginalDst(t *testing.T) {
	p := New(&runtime.Cluster{LB: runtime.OriginalDst}).(Chooser)
	r, ok := p.Choose(Choice{Dest: "127.0.0.9:8080"})
	if !ok || r.Addr != "127.0.0.9:8080" {
		t.Errorf("Choose = %+v, %v; want 127.0.0.9:8080", r, ok)
	}
	if _, ok := p.Choose(Choice{Dest: "example.com:80"}); ok {
		t.Errorf("Choose(name) ok, want no pick")
	}
}

func TestSlowStart(t *testing.T) {
	now := time.Unix(1000, 0)
	eps := []runtime.Endpoint{ep("old", 1, true), ep("new", 1, true)}
	ss := &runtime.SlowStart{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}
	h := newHost(&eps[1], ss, Options{Added: map[string]time.Time{"new:80": now.Add(-5 * time.Second)}, Now: now})
	tests := []struct {
		at   time.Duration // since added
		want float64
	}{{0, 0.1}, {500 * time.Millisecond, 0.1}, {5 * time.Second, 0.5}, {10 * time.Second, 1}, {time.Minute, 1}}
	for _, tc := range tests {
		if got := h.factor(now.Add(-5*time.Second + tc.at)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("factor after %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	old := newHost(&eps[0], ss, Options{Now: now})
	if old.ramp != nil {
		t.Errorf("host without an added time warms up")
	}
	if diff := cmp.Diff(1.0, old.factor(now)); diff != "" {
		t.Error(diff)
	}
}

func BenchmarkChooseHash(b *testing.B) {
	for _, policy := range []struct {
		name string
		lb   runtime.LBPolicy
	}{{"ring_hash", runtime.RingHash}, {"maglev", runtime.Maglev}} {
		b.Run(policy.name, func(b *testing.B) {
			p := New(&runtime.Cluster{LB: policy.lb, Endpoints: hashEndpoints(16)}).(Chooser)
			b.ReportAllocs()
			var h uint64
			for b.Loop() {
				h += 0x9e3779b97f4a7c15
				r, _ := p.Choose(Choice{Hash: h, HasHash: true})
				r.Done()
			}
		})
	}
}
