package xdsserver

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

// cacheFixture is a node snapshot with clusters a and b, their endpoints at
// addrA and addrB, and nothing else.
func cacheFixture(t *testing.T, addrA, addrB string) *nodeSnapshot {
	t.Helper()
	const a, b = "outbound|80||a.default.svc.cluster.local", "outbound|80||b.default.svc.cluster.local"
	snap, _ := build(&translator.Resources{
		Clusters:  map[string]proto.Message{a: edsCluster(a, time.Second), b: edsCluster(b, time.Second)},
		Endpoints: map[string]proto.Message{a: loadAssignment(a, addrA, 80), b: loadAssignment(b, addrB, 80)},
	}, "n", internLog, newInterner())
	return snap
}

// manyClusters is a node snapshot with n EDS clusters c00…, each with one
// endpoint.
func manyClusters(t *testing.T, n int) (*nodeSnapshot, []string) {
	t.Helper()
	res := &translator.Resources{Clusters: map[string]proto.Message{}, Endpoints: map[string]proto.Message{}}
	var names []string
	for i := range n {
		name := fmt.Sprintf("outbound|80||c%02d.default.svc.cluster.local", i)
		res.Clusters[name] = edsCluster(name, time.Second)
		res.Endpoints[name] = loadAssignment(name, fmt.Sprintf("127.0.1.%d", i+1), 80)
		names = append(names, name)
	}
	snap, _ := build(res, "n", internLog, newInterner())
	return snap, names
}

// intern replaces request names by the node's own copies and leaves names
// it does not know alone.
func TestInternSharesNames(t *testing.T) {
	snap, names := manyClusters(t, 3)
	c := newSidecarCache(internLog)
	if err := c.SetSnapshot(t.Context(), "n", snap); err != nil {
		t.Fatal(err)
	}
	req := []string{strings.Clone(names[1]), "unknown"}
	c.intern("n", resourcev3.EndpointType, req)
	if unsafe.StringData(req[0]) != unsafe.StringData(snap.set(resourcev3.EndpointType).byName[names[1]].name) {
		t.Errorf("name %q was not replaced by the set's copy", req[0])
	}
	if req[1] != "unknown" {
		t.Errorf("unknown name became %q", req[1])
	}
	other := []string{strings.Clone(names[0])}
	c.intern("other-node", resourcev3.EndpointType, other) // no snapshot: left alone
	if other[0] != names[0] {
		t.Errorf("name of an unknown node became %q", other[0])
	}
}
