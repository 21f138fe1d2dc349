package xdsserver

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is a running server on loopback with a fake translator.
type harness struct {
	srv  *Server
	reg  *prometheus.Registry
	fake *fakeTranslator
	addr string
}

func startServer(t *testing.T) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), fake: &fakeTranslator{}}
	srv, err := New(Options{Translate: h.fake.Translate, ParseNode: fakeParseNode, Registerer: h.reg,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.srv, h.addr = srv, lis.Addr().String()
	return h
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// response is what the tests need of either protocol's response.
type response struct {
	typeURL, version, nonce string
	resources               []*anypb.Any
}

// adsClient is a raw ADS client speaking one protocol for one type.
type adsClient interface {
	subscribe(typeURL string) error // wildcard
	recv() (response, error)
	ack(r response) error
	nack(r response, msg string) error
}

type sotwClient struct {
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	acked  string // version last accepted, for version_info
	first  bool
}

func (c *sotwClient) subscribe(typeURL string) error {
	return c.stream.Send(&discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL})
}

func (c *sotwClient) recv() (response, error) {
	r, err := c.stream.Recv()
	if err != nil {
		return response{}, err
	}
	return response{r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), r.GetResources()}, nil
}

func (c *sotwClient) ack(r response) error {
	c.acked = r.version
	return c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.typeURL, VersionInfo: r.version, ResponseNonce: r.nonce})
}

func (c *sotwClient) nack(r response, msg string) error {
	return c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.typeURL, VersionInfo: c.acked, ResponseNonce: r.nonce,
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
}

type deltaClient struct {
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func (c *deltaClient) subscribe(typeURL string) error {
	return c.stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: c.node, TypeUrl: typeURL})
}

func (c *deltaClient) recv() (response, error) {
	r, err := c.stream.Recv()
	if err != nil {
		return response{}, err
	}
	out := response{typeURL: r.GetTypeUrl(), version: r.GetSystemVersionInfo(), nonce: r.GetNonce()}
	for _, res := range r.GetResources() {
		out.resources = append(out.resources, res.GetResource())
	}
	return out, nil
}

func (c *deltaClient) ack(r response) error {
	return c.stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce})
}

func (c *deltaClient) nack(r response, msg string) error {
	return c.stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce,
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
}

var protocols = []struct {
	name string
	open func(ctx context.Context, t *testing.T, cc *grpc.ClientConn, node *corev3.Node) adsClient
}{
	{"sotw", func(ctx context.Context, t *testing.T, cc *grpc.ClientConn, node *corev3.Node) adsClient {
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		return &sotwClient{node: node, stream: s}
	}},
	{"delta", func(ctx context.Context, t *testing.T, cc *grpc.ClientConn, node *corev3.Node) adsClient {
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		return &deltaClient{node: node, stream: s}
	}},
}

// clusterNames decodes the cluster names in a response, with each cluster's
// connect timeout so that changes are visible.
func clusterNames(t *testing.T, r response) []string {
	t.Helper()
	var out []string
	for _, a := range r.resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		c, ok := m.(interface{ GetName() string })
		if !ok {
			t.Fatalf("resource %T has no name", m)
		}
		out = append(out, c.GetName())
	}
	slices.Sort(out)
	return out
}

func mustRecv(t *testing.T, c adsClient) response {
	t.Helper()
	r, err := c.recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return r
}

func TestPushes(t *testing.T) {
	const (
		clusterA = "outbound|9080||a.default.svc.cluster.local"
		clusterB = "outbound|9080||b.default.svc.cluster.local"
	)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			h := startServer(t)
			idA, idB := nodeID("a"), nodeID("b")
			h.fake.set(idA, clustersOnly(clusterA, time.Second))
			h.fake.set(idB, clustersOnly(clusterB, time.Second))
			h.srv.Update(&snapshot.Snapshot{Version: 1})

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cc := dial(t, h.addr)
			a := p.open(ctx, t, cc, &corev3.Node{Id: idA})
			b := p.open(ctx, t, cc, &corev3.Node{Id: idB})

			// 1. The first response carries the fake's resources.
			if err := a.subscribe(resourcev3.ClusterType); err != nil {
				t.Fatal(err)
			}
			if err := b.subscribe(resourcev3.ClusterType); err != nil {
				t.Fatal(err)
			}
			ra1, rb1 := mustRecv(t, a), mustRecv(t, b)
			if diff := cmp.Diff([]string{clusterA}, clusterNames(t, ra1)); diff != "" {
				t.Errorf("A's first clusters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{clusterB}, clusterNames(t, rb1)); diff != "" {
				t.Errorf("B's first clusters (-want +got):\n%s", diff)
			}

			// 2. An ACK updates the acked version.
			if err := a.ack(ra1); err != nil {
				t.Fatal(err)
			}
			if err := b.ack(rb1); err != nil {
				t.Fatal(err)
			}
			eventually(t, "A's ACK in Status", func() bool {
				ps, _ := proxyStatus(h.srv, idA)
				ts := typeStatusOf(ps, resourcev3.ClusterType)
				return ts.AckedVersion == ra1.version && ts.Synced()
			})

			// 3. A change to A's resources only pushes to A.
			h.fake.set(idA, clustersOnly(clusterA, 2*time.Second))
			h.srv.Update(&snapshot.Snapshot{Version: 2})
			ra2 := mustRecv(t, a)
			if ra2.version == ra1.version {
				t.Errorf("A's second response kept version %q", ra2.version)
			}
			eventually(t, "B recomputed at version 2", func() bool {
				ps, _ := proxyStatus(h.srv, idB)
				return ps.SnapshotVersion == 2
			})
			psB, _ := proxyStatus(h.srv, idB)
			if got := typeStatusOf(psB, resourcev3.ClusterType); got.Pushes != 1 || got.SentVersion != rb1.version {
				t.Errorf("B's CDS after an update that does not affect it: %+v, want 1 push of %q", got, rb1.version)
			}

			// 4. A NACK is recorded with its message, in Status and the metric.
			if err := a.nack(ra2, "bad connect timeout"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "A's NACK in Status", func() bool {
				ps, _ := proxyStatus(h.srv, idA)
				return typeStatusOf(ps, resourcev3.ClusterType).LastNACK == "bad connect timeout"
			})
			psA, _ := proxyStatus(h.srv, idA)
			if ts := typeStatusOf(psA, resourcev3.ClusterType); ts.AckedVersion != ra1.version || ts.SentVersion != ra2.version || ts.LastNACKTime.IsZero() {
				t.Errorf("A's CDS after NACK: %+v, want acked %q, sent %q and a NACK time", ts, ra1.version, ra2.version)
			}
			if got := metricValue(t, h.reg, "pilot_total_xds_rejects", "type", "cds"); got != 1 {
				t.Errorf("pilot_total_xds_rejects{type=cds} = %v, want 1", got)
			}

			// 5. The rejected config is not re-sent: the next response is the
			// next change.
			h.fake.set(idA, clustersOnly(clusterA, 3*time.Second))
			h.srv.Update(&snapshot.Snapshot{Version: 3})
			ra3 := mustRecv(t, a)
			if ra3.version == ra2.version || ra3.version == ra1.version {
				t.Errorf("after NACK, A got version %q again; want the new config", ra3.version)
			}
			if got := metricValue(t, h.reg, "pilot_xds_pushes", "type", "cds"); got != 4 {
				t.Errorf("pilot_xds_pushes{type=cds} = %v, want 4 (A: 3, B: 1)", got)
			}
			if got := metricValue(t, h.reg, "pilot_xds"); got != 2 {
				t.Errorf("pilot_xds = %v, want 2", got)
			}

			// 6. Closing a proxy's last stream forgets it.
			cancel()
			eventually(t, "proxies gone from Status", func() bool { return len(h.srv.Status()) == 0 })
			if got := metricValue(t, h.reg, "pilot_xds"); got != 0 {
				t.Errorf("pilot_xds after disconnect = %v, want 0", got)
			}
		})
	}
}
