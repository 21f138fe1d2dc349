package xdsserver

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// TestUpdateNeverBlocks holds translation hostage and shows that Update
// still returns at once, and that a burst of updates coalesces into one
// recomputation of the latest snapshot.
func TestUpdateNeverBlocks(t *testing.T) {
	h := startServer(t)
	const c = "outbound|9080||a.default.svc.cluster.local"
	id := nodeID("a")
	h.fake.set(id, clustersOnly(c, time.Second))

	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	blocking := make(chan bool, 1)
	blocking <- false // the first translation (first sight) runs freely
	inner := h.srv.opts.Translate
	h.srv.opts.Translate = func(s *snapshot.Snapshot, p translator.Proxy) *translator.Resources {
		if b := <-blocking; b {
			entered <- struct{}{}
			<-release
		}
		blocking <- false
		return inner(s, p)
	}
	h.srv.Update(&snapshot.Snapshot{Version: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := protocols[0].open(ctx, t, dial(t, h.addr), &corev3.Node{Id: id})
	if err := a.subscribe(resourcev3.ClusterType); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, a)

	// The next translation blocks inside the push loop.
	<-blocking
	blocking <- true
	h.srv.Update(&snapshot.Snapshot{Version: 2})
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("push loop never translated version 2")
	}

	start := time.Now()
	for v := uint64(3); v <= 1000; v++ {
		h.srv.Update(&snapshot.Snapshot{Version: v})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("998 Updates took %v with translation blocked", d)
	}
	h.fake.mu.Lock()
	before := h.fake.calls
	h.fake.mu.Unlock()
	close(release)

	eventually(t, "node recomputed at version 1000", func() bool {
		ps, _ := proxyStatus(h.srv, id)
		return ps.SnapshotVersion == 1000
	})
	h.fake.mu.Lock()
	after := h.fake.calls
	h.fake.mu.Unlock()
	// The blocked pass finishes (version 2), then one pass for the burst.
	if got := after - before; got > 2 {
		t.Errorf("%d translations after the burst, want at most 2 (coalesced)", got)
	}
}
