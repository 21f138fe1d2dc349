package xdsserver

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

const (
	dcA = "outbound|80||a.default.svc.cluster.local"
	dcB = "outbound|80||b.default.svc.cluster.local"
	dcC = "outbound|80||c.default.svc.cluster.local"
)

// edsConfig is a proxy config of EDS clusters with one endpoint each, at
// the given addresses (cluster name → address).
func edsConfig(addrs map[string]string) *translator.Resources {
	r := &translator.Resources{Clusters: map[string]proto.Message{}, Endpoints: map[string]proto.Message{}}
	for name, addr := range addrs {
		r.Clusters[name] = edsCluster(name, time.Second)
		r.Endpoints[name] = loadAssignment(name, addr, 80)
	}
	return r
}

// deltaFixture starts a server whose node a has EDS clusters at addrs (name
// → address) and opens a delta stream to it.
func deltaFixture(t *testing.T, addrs map[string]string) (*harness, string, *deltaStreamClient) {
	t.Helper()
	h := startServer(t)
	id := nodeID("a")
	h.fake.set(id, edsConfig(addrs))
	h.srv.Update(&snapshot.Snapshot{Version: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return h, id, openDelta(ctx, t, h)
}

// deltaStreamClient is a raw delta ADS stream on loopback.
type deltaStreamClient struct {
	t      *testing.T
	ctx    context.Context // the stream's
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func openDelta(ctx context.Context, t *testing.T, h *harness) *deltaStreamClient {
	t.Helper()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, h.addr)).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open delta stream: %v", err)
	}
	return &deltaStreamClient{t: t, ctx: ctx, stream: s}
}

func (c *deltaStreamClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// got is a delta response as the tests compare it.
type got struct {
	Type    string
	Names   []string // name@address for endpoints, name for the rest
	Removed []string
	nonce   string
	version string
}

func (c *deltaStreamClient) recv() got {
	c.t.Helper()
	r, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	g := got{Type: typeLabel(r.GetTypeUrl()), Removed: r.GetRemovedResources(), nonce: r.GetNonce(), version: r.GetSystemVersionInfo()}
	for _, res := range r.GetResources() {
		name := res.GetName()
		m, err := res.GetResource().UnmarshalNew()
		if err != nil {
			c.t.Fatalf("unmarshal %s: %v", name, err)
		}
		if r.GetTypeUrl() == resourcev3.EndpointType {
			name += "@" + endpointAddr(m)
		}
		if res.GetVersion() == "" {
			c.t.Errorf("resource %s without a version", name)
		}
		g.Names = append(g.Names, name)
	}
	slices.Sort(g.Names)
	return g
}

func endpointAddr(m proto.Message) string {
	cla, ok := m.(*endpointv3.ClusterLoadAssignment)
	if !ok {
		return ""
	}
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			return e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
		}
	}
	return ""
}

func (c *deltaStreamClient) expect(want got) got {
	c.t.Helper()
	g := c.recv()
	if diff := cmp.Diff(want, g, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".nonce" || p.Last().String() == ".version"
	}, cmp.Ignore()), cmp.AllowUnexported(got{})); diff != "" {
		c.t.Fatalf("response (-want +got):\n%s", diff)
	}
	return g
}

func (c *deltaStreamClient) ack(g got) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: urlOf(g.Type), ResponseNonce: g.nonce})
}

func urlOf(label string) string {
	for _, st := range servedTypes {
		if typeLabel(st.url) == label {
			return st.url
		}
	}
	return ""
}

// TestDeltaProtocol walks one sidecar's delta stream through the protocol:
// wildcard CDS and explicit EDS, changes, removals, subscribe and
// unsubscribe, ACK and NACK, ADS order and nonces.
func TestDeltaProtocol(t *testing.T) {
	h, id, c := deltaFixture(t, map[string]string{dcA: "127.0.0.1", dcB: "127.0.0.2"})

	// 1. CDS wildcard (Envoy's "*"): every cluster.
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}})
	cds1 := c.expect(got{Type: "cds", Names: []string{dcA, dcB}})
	// 2. EDS by name, before the CDS ACK, as Envoy does.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{dcA}})
	c.ack(cds1)
	eds1 := c.expect(got{Type: "eds", Names: []string{dcA + "@127.0.0.1"}})
	if eds1.nonce == cds1.nonce {
		t.Errorf("two responses with nonce %q", eds1.nonce)
	}
	c.ack(eds1)
	eventually(t, "CDS and EDS ACKed in Status", func() bool {
		ps, _ := proxyStatus(h.srv, id)
		return typeStatusOf(ps, resourcev3.ClusterType).Synced() && typeStatusOf(ps, resourcev3.EndpointType).Synced()
	})

	// 3. Subscribing to one more name sends that name only.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{dcB}})
	eds2 := c.expect(got{Type: "eds", Names: []string{dcB + "@127.0.0.2"}})
	c.ack(eds2)

	// 4. An endpoint change sends that ClusterLoadAssignment only.
	h.fake.set(id, edsConfig(map[string]string{dcA: "127.0.0.9", dcB: "127.0.0.2"}))
	h.srv.Update(&snapshot.Snapshot{Version: 2})
	eds3 := c.expect(got{Type: "eds", Names: []string{dcA + "@127.0.0.9"}})
	c.ack(eds3)

	// 5. A new cluster and a removed one: CDS first (ADS order), with the
	// removal, then EDS says the removed cluster's endpoints are gone.
	h.fake.set(id, edsConfig(map[string]string{dcA: "127.0.0.9", dcC: "127.0.0.3"}))
	h.srv.Update(&snapshot.Snapshot{Version: 3})
	cds2 := c.expect(got{Type: "cds", Names: []string{dcC}, Removed: []string{dcB}})
	eds4 := c.expect(got{Type: "eds", Removed: []string{dcB}})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{dcC}, ResourceNamesUnsubscribe: []string{dcB}})
	c.ack(cds2)
	c.expect(got{Type: "eds", Names: []string{dcC + "@127.0.0.3"}})

	// 6. Unsubscribe a while eds5 is unanswered (so the change below
	// waits for the request), change a and c: only c is sent. Subscribe
	// to a again: it is sent again, though unchanged since.
	h.fake.set(id, edsConfig(map[string]string{dcA: "127.0.0.10", dcC: "127.0.0.4"}))
	h.srv.Update(&snapshot.Snapshot{Version: 4})
	computed(t, h, id, 4)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesUnsubscribe: []string{dcA}})
	eds6 := c.expect(got{Type: "eds", Names: []string{dcC + "@127.0.0.4"}})
	c.ack(eds4)
	c.ack(eds6)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{dcA}})
	eds7 := c.expect(got{Type: "eds", Names: []string{dcA + "@127.0.0.10"}})

	// 7. A NACK is recorded; nothing is re-sent; the next change is.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: eds7.nonce,
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "bad endpoint"}})
	eventually(t, "the NACK in Status", func() bool {
		ps, _ := proxyStatus(h.srv, id)
		return typeStatusOf(ps, resourcev3.EndpointType).LastNACK == "bad endpoint"
	})
	ps, _ := proxyStatus(h.srv, id)
	if ts := typeStatusOf(ps, resourcev3.EndpointType); ts.AckedVersion != eds6.version || ts.SentVersion != eds7.version {
		t.Errorf("EDS after the NACK: %+v, want acked %q (the last ACK), sent %q", ts, eds6.version, eds7.version)
	}
	if got := metricValue(t, h.reg, "pilot_total_xds_rejects", "type", "eds"); got != 1 {
		t.Errorf("pilot_total_xds_rejects{type=eds} = %v, want 1", got)
	}
	h.fake.set(id, edsConfig(map[string]string{dcA: "127.0.0.11", dcC: "127.0.0.4"}))
	h.srv.Update(&snapshot.Snapshot{Version: 5})
	c.expect(got{Type: "eds", Names: []string{dcA + "@127.0.0.11"}})
	if got := metricValue(t, h.reg, "pilot_xds_pushes", "type", "eds"); got != 8 {
		t.Errorf("pilot_xds_pushes{type=eds} = %v, want 8", got)
	}
}

// Until a response is answered, a change is held back and sent, latest
// wins, once it is: a client has at most one unanswered response per type,
// as go-control-plane's delta server has it.
func TestDeltaOneUnansweredResponse(t *testing.T) {
	h, id, c := deltaFixture(t, map[string]string{dcA: "127.0.0.1"})
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType})
	cds := c.expect(got{Type: "cds", Names: []string{dcA}})
	for v, addr := range []string{"127.0.0.2", "127.0.0.3"} {
		h.fake.set(id, edsConfig(map[string]string{dcA: addr, dcB: addr}))
		h.srv.Update(&snapshot.Snapshot{Version: uint64(v + 2)})
		computed(t, h, id, uint64(v+2))
	}
	c.ack(cds)
	c.expect(got{Type: "cds", Names: []string{dcB}})
}

// A reconnecting client lists what it holds in initial_resource_versions:
// only what differs is sent, and what is gone is removed.
func TestDeltaReconnect(t *testing.T) {
	h, id, c := deltaFixture(t, map[string]string{dcA: "127.0.0.1", dcB: "127.0.0.2"})
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}})
	r, err := c.stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]string{}
	for _, res := range r.GetResources() {
		held[res.GetName()] = res.GetVersion()
	}
	held[dcC] = "gone"     // the client held a cluster that no longer exists
	held[dcB] = "outdated" // and an older b

	c2 := openDelta(c.ctx, t, h)
	c2.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType,
		ResourceNamesSubscribe: []string{"*"}, InitialResourceVersions: held})
	c2.expect(got{Type: "cds", Names: []string{dcB}, Removed: []string{dcC}})

	// Holding everything at its version: an empty response, which Envoy
	// needs to finish initialising.
	delete(held, dcC)
	held[dcB] = r.GetResources()[1].GetVersion()
	c3 := openDelta(c.ctx, t, h)
	c3.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType,
		ResourceNamesSubscribe: []string{"*"}, InitialResourceVersions: held})
	c3.expect(got{Type: "cds"})
	// And by name, EDS: nothing to send, so nothing sent until a change.
	c3.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{dcA},
		InitialResourceVersions: map[string]string{dcA: "stale"}})
	c3.expect(got{Type: "eds", Names: []string{dcA + "@127.0.0.1"}})
}

// Legacy wildcard: a first request naming nothing subscribes to
// everything until a request names something; "*" can be unsubscribed.
func TestDeltaLegacyWildcard(t *testing.T) {
	h, id, c := deltaFixture(t, map[string]string{dcA: "127.0.0.1", dcB: "127.0.0.2"})
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType})
	cds := c.expect(got{Type: "cds", Names: []string{dcA, dcB}})
	// Naming a and unsubscribing "*" (with the ACK: the change below
	// waits for it): only a from now on.
	h.fake.set(id, &translator.Resources{Clusters: map[string]proto.Message{
		dcA: edsCluster(dcA, 2*time.Second), dcB: edsCluster(dcB, 2*time.Second), dcC: edsCluster(dcC, time.Second)}})
	h.srv.Update(&snapshot.Snapshot{Version: 2})
	computed(t, h, id, 2)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.nonce,
		ResourceNamesSubscribe: []string{dcA}, ResourceNamesUnsubscribe: []string{"*"}})
	c.expect(got{Type: "cds", Names: []string{dcA}})
}

// computed waits until node id's resources follow snapshot version v.
func computed(t *testing.T, h *harness, id string, v uint64) {
	t.Helper()
	eventually(t, "the change computed", func() bool {
		ps, _ := proxyStatus(h.srv, id)
		return ps.SnapshotVersion == v
	})
}

// A type Trellis does not serve is never answered; the stream goes on. A
// request without a type ends the stream, as go-control-plane ends it.
func TestDeltaUnservedAndBadType(t *testing.T) {
	_, id, c := deltaFixture(t, map[string]string{dcA: "127.0.0.1"})
	// The node may come after the first request.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.SecretType})
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeProto(id), TypeUrl: resourcev3.ClusterType})
	c.expect(got{Type: "cds", Names: []string{dcA}})
	c.send(&discoveryv3.DeltaDiscoveryRequest{})
	if _, err := c.stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("after a request without a type: %v, want InvalidArgument", err)
	}
}

// A proxyless gRPC client's delta stream is served by go-control-plane's
// delta server from the proxyless cache: only the names it asks for.
func TestDeltaProxyless(t *testing.T) {
	h := startServer(t)
	id := "sidecar~~client.default~default.svc.cluster.local"
	const target, other = "echo.default.svc.cluster.local:9080", "other.default.svc.cluster.local:8080"
	h.fake.set(id, &translator.Resources{
		Listeners: map[string]proto.Message{target: apiListener(t, target, "9080"), other: apiListener(t, other, "8080")},
		Routes:    map[string]proto.Message{"9080": routeTo("9080", dcA), "8080": routeTo("8080", dcA)},
	})
	h.srv.Update(&snapshot.Snapshot{Version: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := openDelta(ctx, t, h)
	node := &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"GENERATOR": structpb.NewStringValue("grpc")}}}
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType, ResourceNamesSubscribe: []string{target}})
	c.expect(got{Type: "lds", Names: []string{target}})
}

// Responses written from shared encodings decode to the plain messages.
func TestEncodedResponseDecodes(t *testing.T) {
	snap := cacheFixture(t, "127.0.0.1", "127.0.0.2")
	for _, tc := range []struct {
		name    string
		e       *encodedResponse
		decoded proto.Message
	}{
		{"delta", &encodedResponse{delta: true, out: snap.sets[0].sorted, head: &discoveryv3.DeltaDiscoveryResponse{
			SystemVersionInfo: "v", TypeUrl: resourcev3.ClusterType, RemovedResources: []string{"gone"}, Nonce: "7"}},
			&discoveryv3.DeltaDiscoveryResponse{}},
		{"sotw", &encodedResponse{out: snap.sets[1].sorted, head: &discoveryv3.DiscoveryResponse{
			VersionInfo: "v", TypeUrl: resourcev3.EndpointType, Nonce: "7"}},
			&discoveryv3.DiscoveryResponse{}},
		{"empty", &encodedResponse{delta: true, head: &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resourcev3.ListenerType}},
			&discoveryv3.DeltaDiscoveryResponse{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := (codec{}).Marshal(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(bs.Materialize(), tc.decoded); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.e.message(), tc.decoded, protocmp.Transform()); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}
