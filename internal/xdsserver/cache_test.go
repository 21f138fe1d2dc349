package xdsserver

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
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

func sotwNames(t *testing.T, r cachev3.Response) []string {
	t.Helper()
	if r == nil {
		return nil
	}
	dr, err := r.GetDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, a := range dr.GetResources() {
		out = append(out, cachev3.GetResourceName(mustUnmarshal(t, a.GetTypeUrl(), a.GetValue())))
	}
	return out
}

func mustUnmarshal(t *testing.T, typeURL string, b []byte) proto.Message {
	t.Helper()
	m := map[string]proto.Message{resourcev3.ClusterType: edsCluster("", time.Second), resourcev3.EndpointType: loadAssignment("", "127.0.0.1", 1)}[typeURL]
	proto.Reset(m)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A state-of-the-world EDS stream is sent only the ClusterLoadAssignments
// that changed since what it was sent; CDS (full state) always gets all.
func TestSotwSendsOnlyChangedEndpoints(t *testing.T) {
	const a, b = "outbound|80||a.default.svc.cluster.local", "outbound|80||b.default.svc.cluster.local"
	v1, v2 := cacheFixture(t, "127.0.0.1", "127.0.0.2"), cacheFixture(t, "127.0.0.9", "127.0.0.2")
	eds := v1.set(resourcev3.EndpointType)

	sub := streamv3.NewSotwSubscription([]string{a, b}, false)
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{a, b}}
	first := sotwResponse(req, &sub, eds)
	if diff := cmp.Diff([]string{a, b}, sotwNames(t, first)); diff != "" {
		t.Fatalf("first EDS response (-want +got):\n%s", diff)
	}
	sub.SetReturnedResources(first.GetReturnedResources())
	req = &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{a, b}, VersionInfo: eds.version}
	if r := sotwResponse(req, &sub, eds); r != nil {
		t.Errorf("ACK of the current version answered with %v", sotwNames(t, r))
	}
	next := sotwResponse(req, &sub, v2.set(resourcev3.EndpointType))
	if diff := cmp.Diff([]string{a}, sotwNames(t, next)); diff != "" {
		t.Errorf("EDS after a's endpoint moved (-want +got):\n%s", diff)
	}
	if got, want := next.GetResponseVersion(), v2.GetVersion(resourcev3.EndpointType); got != want {
		t.Errorf("version %q, want %q", got, want)
	}

	// A name subscribed again after it was dropped is sent again.
	sub.SetReturnedResources(next.GetReturnedResources())
	sub.SetResourceSubscription([]string{b})
	sub.SetResourceSubscription([]string{a, b})
	req = &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{a, b}, VersionInfo: next.GetResponseVersion()}
	if diff := cmp.Diff([]string{a}, sotwNames(t, sotwResponse(req, &sub, v2.set(resourcev3.EndpointType)))); diff != "" {
		t.Errorf("EDS after re-subscribing a (-want +got):\n%s", diff)
	}

	cds := streamv3.NewSotwSubscription(nil, true)
	creq := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: v1.GetVersion(resourcev3.ClusterType)}
	if r := sotwResponse(creq, &cds, v1.set(resourcev3.ClusterType)); r != nil {
		t.Errorf("CDS ACK of the current version answered with %v", sotwNames(t, r))
	}
	creq.VersionInfo = "old"
	if diff := cmp.Diff([]string{a, b}, sotwNames(t, sotwResponse(creq, &cds, v1.set(resourcev3.ClusterType)))); diff != "" {
		t.Errorf("CDS (-want +got):\n%s", diff)
	}
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

// Explicit subscriptions are answered in name order whether the stream
// names most of the set (walked in order) or a few names (sorted).
func TestSotwExplicitSubscriptionOrder(t *testing.T) {
	snap, names := manyClusters(t, 20)
	eds := snap.set(resourcev3.EndpointType)
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name string
		sub  []string
	}{
		{"all, reversed", reversed},
		{"few, reversed", []string{names[7], names[3]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := streamv3.NewSotwSubscription(tc.sub, false)
			req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: tc.sub}
			want := slices.Sorted(slices.Values(tc.sub))
			if diff := cmp.Diff(want, sotwNames(t, sotwResponse(req, &sub, eds))); diff != "" {
				t.Errorf("EDS response (-want +got):\n%s", diff)
			}
		})
	}
}

// intern replaces request names by the node's own copies and leaves names
// it does not know alone.
func TestInternSharesNames(t *testing.T) {
	snap, names := manyClusters(t, 3)
	c := newSidecarCache(internLog, nil)
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

// A held watch of a type whose set did not change stays held; the type
// that changed is answered.
func TestSetSnapshotAnswersChangedTypesOnly(t *testing.T) {
	v1, v2 := cacheFixture(t, "127.0.0.1", "127.0.0.2"), cacheFixture(t, "127.0.0.9", "127.0.0.2")
	c := newSidecarCache(internLog, nil)
	if err := c.SetSnapshot(t.Context(), "n", v1); err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "n"}
	ch := make(chan cachev3.Response, 4)
	cds := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, VersionInfo: v1.GetVersion(resourcev3.ClusterType)}
	cdsSub := streamv3.NewSotwSubscription(nil, true)
	if _, err := c.CreateWatch(cds, cdsSub, ch); err != nil {
		t.Fatal(err)
	}
	names := []string{"outbound|80||a.default.svc.cluster.local", "outbound|80||b.default.svc.cluster.local"}
	eds := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: names}
	edsSub := streamv3.NewSotwSubscription(names, false)
	if _, err := c.CreateWatch(eds, edsSub, ch); err != nil {
		t.Fatal(err)
	}
	first := <-ch // EDS: never sent
	edsSub.SetReturnedResources(first.GetReturnedResources())
	eds.VersionInfo = v1.GetVersion(resourcev3.EndpointType)
	if _, err := c.CreateWatch(eds, edsSub, ch); err != nil {
		t.Fatal(err)
	}
	if len(ch) != 0 {
		t.Fatalf("%d responses to up-to-date watches", len(ch))
	}
	if err := c.SetSnapshot(t.Context(), "n", v2); err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 {
		t.Fatalf("%d responses after an endpoint change, want 1", len(ch))
	}
	if got := (<-ch).GetRequest().GetTypeUrl(); got != resourcev3.EndpointType {
		t.Errorf("answered %s, want EDS", got)
	}
}

// returnedAfter: the names kept at their sent versions, in a new map.
func TestReturnedAfter(t *testing.T) {
	keepAB := func(name string) bool { return name == "a" || name == "b" }
	for _, tc := range []struct {
		name     string
		returned map[string]string
		out      []*resource
		want     map[string]string
	}{
		{"first", nil, []*resource{{name: "a", version: "2"}, {name: "b", version: "1"}}, map[string]string{"a": "2", "b": "1"}},
		{"update", map[string]string{"a": "1", "b": "1"}, []*resource{{name: "a", version: "2"}}, map[string]string{"a": "2", "b": "1"}},
		{"drop unkept", map[string]string{"a": "1", "b": "1", "gone": "1"}, nil, map[string]string{"a": "1", "b": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.returned)
			got := returnedAfter(tc.returned, tc.out, 2, keepAB)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("returnedAfter (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.returned); diff != "" {
				t.Errorf("returned was modified (-before +after):\n%s", diff)
			}
		})
	}
}
