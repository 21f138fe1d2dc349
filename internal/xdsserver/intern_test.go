package xdsserver

import (
	"io"
	"log/slog"
	"testing"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

const internCluster = "outbound|9080||a.default.svc.cluster.local"

// internFixture is one proxy's translation: equal for every call, but made
// of fresh messages each time, as the translator returns them.
func internFixture(timeout time.Duration) *translator.Resources {
	return &translator.Resources{Clusters: map[string]proto.Message{internCluster: edsCluster(internCluster, timeout)}}
}

func builtCluster(t *testing.T, snap *cachev3.Snapshot) proto.Message {
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
