package xdsserver

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

const internCluster = "outbound|9080||a.default.svc.cluster.local"

// internFixture is one proxy's translation: equal for every call, but made
// of fresh messages each time, as the translator returns them.
func internFixture(timeout time.Duration) *translator.Resources {
	return &translator.Resources{Clusters: map[string]proto.Message{internCluster: edsCluster(internCluster, timeout)}}
}

func builtCluster(t *testing.T, snap *nodeSnapshot) proto.Message {
	t.Helper()
	c, ok := snap.GetResources(resourcev3.ClusterType)[internCluster]
	if !ok {
		t.Fatalf("no cluster %q in snapshot", internCluster)
	}
	return c
}

var internLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestInternSharesIdenticalResources(t *testing.T) {
	shared := newInterner()
	a, _ := build(internFixture(time.Second), "a", internLog, shared)
	b, _ := build(internFixture(time.Second), "b", internLog, shared)
	if builtCluster(t, a) != builtCluster(t, b) {
		t.Error("two proxies hold two copies of one identical cluster")
	}
	c, _ := build(internFixture(2*time.Second), "c", internLog, shared)
	if builtCluster(t, c) == builtCluster(t, a) {
		t.Error("a different cluster was replaced by the shared one")
	}
	if proto.Equal(builtCluster(t, c), builtCluster(t, a)) {
		t.Fatal("test set-up: the clusters should differ")
	}
}

func TestInternSweepKeepsOnlyWhatTheLastPushUsed(t *testing.T) {
	shared := newInterner()
	build(internFixture(time.Second), "a", internLog, shared)
	used := shared.len()
	if used == 0 {
		t.Fatal("nothing interned")
	}
	shared.sweep() // the push that used them ends: they stay
	if got := shared.len(); got != used {
		t.Fatalf("after the first sweep: %d entries, want %d", got, used)
	}
	shared.sweep() // a push that used nothing: all go
	if got := shared.len(); got != 0 {
		t.Fatalf("after a push that used nothing: %d entries, want 0", got)
	}
}

func TestBuildVersionsDoNotDependOnSharing(t *testing.T) {
	_, with := build(internFixture(time.Second), "a", internLog, newInterner())
	_, without := build(internFixture(time.Second), "a", internLog, nil)
	if with != without {
		t.Errorf("versions differ with sharing: %v vs %v", with, without)
	}
}

// sharedFixture is a translation whose cluster and endpoints are shared
// pointers, as translator.TranslateCached hands them to every proxy, with a
// per-proxy listener and route table, and optionally an invalid shared
// cluster.
type sharedFixture struct {
	cluster, bad proto.Message
	cla          proto.Message
}

func newSharedFixture() sharedFixture {
	return sharedFixture{
		cluster: edsCluster(internCluster, time.Second),
		bad:     edsCluster("outbound|80||bad.default.svc.cluster.local", -time.Second), // connect_timeout must be > 0
		cla:     loadAssignment(internCluster, "127.0.20.1", 9080),
	}
}

func (f sharedFixture) resources(t *testing.T, node string) *translator.Resources {
	return &translator.Resources{
		Clusters:  map[string]proto.Message{internCluster: f.cluster, "outbound|80||bad.default.svc.cluster.local": f.bad},
		Endpoints: map[string]proto.Message{internCluster: f.cla},
		Listeners: map[string]proto.Message{"api": apiListener(t, "api", "r-"+node)},
		Routes:    map[string]proto.Message{"r-" + node: routeTo("r-"+node, internCluster)},
	}
}

// TestBuildRemembersSharedMessages: a cluster or endpoints message seen
// again by identity is not encoded again, the result is what build gives
// without any sharing, invalid messages are never remembered, and
// listeners (built per proxy) are not remembered at all; route tables are
// (the translator shares sidecars' outbound tables per view).
func TestBuildRemembersSharedMessages(t *testing.T) {
	f := newSharedFixture()
	shared := newInterner()
	for _, node := range []string{"a", "b", "c"} {
		t.Run(node, func(t *testing.T) {
			got, gotVers := build(f.resources(t, node), node, internLog, shared)
			want, wantVers := build(f.resources(t, node), node, internLog, nil)
			if gotVers != wantVers {
				t.Errorf("versions %v, want %v (as without sharing)", gotVers, wantVers)
			}
			for _, st := range servedTypes {
				g, w := got.GetResources(st.url), want.GetResources(st.url)
				if diff := cmp.Diff(slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g))); diff != "" {
					t.Errorf("%s names (-unshared +shared):\n%s", st.url, diff)
				}
			}
			if builtCluster(t, got) != f.cluster {
				t.Error("the shared cluster was not handed out as is")
			}
		})
	}
	shared.mu.Lock()
	known := slices.Collect(maps.Keys(shared.known))
	shared.mu.Unlock()
	if len(known) != 5 || !slices.Contains(known, f.cluster) || !slices.Contains(known, f.cla) || slices.Contains(known, f.bad) {
		t.Errorf("remembered %d messages, want exactly the valid shared cluster and endpoints and the 3 route tables", len(known))
	}
	for _, m := range known {
		if _, ok := m.(*listenerv3.Listener); ok {
			t.Errorf("listener %q remembered", m.(*listenerv3.Listener).GetName())
		}
	}
	shared.sweep()
	shared.sweep()
	if n := len(shared.known); n != 0 {
		t.Errorf("after a push that used nothing: %d remembered, want 0", n)
	}
}
