package xdsclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	nodeID  = "sidecar~127.0.10.1~productpage-v1.default~default.svc.cluster.local"
	reviews = "outbound|9080||reviews.default.svc.cluster.local"
	wait    = 10 * time.Second // bound on every wait for the client or server
)

var cmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// outboundListener is the listener Trellis emits for a Sidecar egress bind
// on 127.0.30.1:9080, with a network filter named by filterName and typed by
// cfg (http_connection_manager unless a test wants a rejected one).
func outboundListener(t testing.TB, filterName string, cfg proto.Message) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             "127.0.30.1_9080",
		Address:          sockAddr("127.0.30.1", 9080),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: filterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, cfg)},
		}}}},
	}
}

func goodListener(t testing.TB) *listenerv3.Listener {
	return outboundListener(t, "envoy.filters.network.http_connection_manager", &hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound_127.0.30.1_9080",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "9080"}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	})
}

// badListener uses a network filter outside the subset; the compiler
// rejects it. Its config is an Any the client never decodes.
func badListener(t testing.TB) *listenerv3.Listener {
	l := goodListener(t)
	l.FilterChains[0].Filters[0] = &listenerv3.Filter{
		Name: "envoy.filters.network.redis_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{
			TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
		}},
	}
	return l
}

func routeTable() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
		Name: "reviews.default.svc.cluster.local:9080", Domains: []string{"reviews", "reviews:9080"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: reviews}}},
		}},
	}}}
}

func edsCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 reviews,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: reviews},
		ConnectTimeout:       durationpb.New(10 * time.Second),
	}
}

func endpoints(ips ...string) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, ip := range ips {
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(ip, 9080)}},
			HealthStatus:        corev3.HealthStatus_HEALTHY,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: reviews, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs,
	}}}
}

func snapshot(t testing.TB, version string, l *listenerv3.Listener, ips ...string) *cachev3.Snapshot {
	t.Helper()
	s, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {l},
		resourcev3.RouteType:    {routeTable()},
		resourcev3.ClusterType:  {edsCluster()},
		resourcev3.EndpointType: {endpoints(ips...)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantConfig is what the client must publish for snapshot(version, goodListener, ips...).
func wantConfig(version string, ips ...string) *runtime.Config {
	var eps []runtime.Endpoint
	for _, ip := range ips {
		eps = append(eps, runtime.Endpoint{Host: ip, Port: 9080, Weight: 1, Healthy: true, LocalityWeight: 1})
	}
	httpl := &runtime.HTTPListener{StatPrefix: "outbound_127.0.30.1_9080", RouteName: "9080"}
	return &runtime.Config{
		Version: version,
		Listeners: []*runtime.Listener{{
			Name: "127.0.30.1_9080", Address: netip.MustParseAddrPort("127.0.30.1:9080"),
			Direction: runtime.Outbound, Kind: runtime.ListenerHTTP,
			HTTP:         httpl,
			FilterChains: []*runtime.FilterChain{{Kind: runtime.ListenerHTTP, HTTP: httpl}},
		}},
		Routes: map[string]*runtime.RouteTable{"9080": {Name: "9080", VirtualHosts: []*runtime.VirtualHost{{
			Name: "reviews.default.svc.cluster.local:9080", Domains: []string{"reviews", "reviews:9080"},
			Routes: []*runtime.Route{{
				Match:   runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true},
				Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: reviews, Weight: 1}}},
			}},
		}}}},
		Clusters: map[string]*runtime.Cluster{reviews: {Name: reviews, ConnectTimeout: 10 * time.Second, Endpoints: eps}},
	}
}

// mgmtServer is a go-control-plane ADS server on loopback that can be
// stopped and restarted on the same address.
type mgmtServer struct {
	t     *testing.T
	cache cachev3.SnapshotCache
	xds   serverv3.Server
	addr  string
	grpc  *grpc.Server
	done  chan error
	nacks chan string // error_detail messages the server received
}

func newMgmtServer(t *testing.T, ctx context.Context) *mgmtServer {
	m := &mgmtServer{t: t, cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), addr: "127.0.0.1:0", nacks: make(chan string, 64)}
	record := func(detail string) {
		select {
		case m.nacks <- detail:
		default: // the test reads the first ones; never block the server
		}
	}
	m.xds = serverv3.NewServer(ctx, m.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			if r.GetErrorDetail() != nil {
				record(r.GetErrorDetail().GetMessage())
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			if r.GetErrorDetail() != nil {
				record(r.GetErrorDetail().GetMessage())
			}
			return nil
		},
	})
	m.start()
	return m
}

func (m *mgmtServer) start() {
	lis, err := net.Listen("tcp", m.addr)
	if err != nil {
		m.t.Fatal(err)
	}
	m.addr = lis.Addr().String()
	m.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(m.grpc, m.xds)
	m.done = make(chan error, 1)
	go func() { m.done <- m.grpc.Serve(lis) }()
}

func (m *mgmtServer) stop() {
	m.grpc.Stop()
	if err := <-m.done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		m.t.Errorf("Serve: %v", err)
	}
}

func (m *mgmtServer) set(s *cachev3.Snapshot) {
	if err := m.cache.SetSnapshot(context.Background(), nodeID, s); err != nil {
		m.t.Fatal(err)
	}
}

func nextConfig(t *testing.T, ch <-chan *runtime.Config) *runtime.Config {
	t.Helper()
	select {
	case cfg := <-ch:
		return cfg
	case <-time.After(wait):
		t.Fatal("no config published in time")
		return nil
	}
}

// waitFor polls cond until it holds or the bounded deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestClientAgainstManagementServer(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := newMgmtServer(t, ctx)
			defer func() { srv.stop() }()
			srv.set(snapshot(t, "v1", goodListener(t), "127.0.10.3"))

			configs := make(chan *runtime.Config, 64)
			c := New(Options{
				Server:     srv.addr,
				Node:       &corev3.Node{Id: nodeID},
				Delta:      delta,
				OnConfig:   func(cfg *runtime.Config) { configs <- cfg },
				MaxBackoff: 50 * time.Millisecond,
			})
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx) }()

			// 1. The initial resources compile into the expected config.
			if diff := cmp.Diff(wantConfig("v1", "127.0.10.3"), nextConfig(t, configs), cmpOpts); diff != "" {
				t.Fatalf("initial config (-want +got):\n%s", diff)
			}
			if !c.Connected() {
				t.Errorf("Connected() = false with a config received")
			}

			// 2. A new endpoint publishes a new config.
			srv.set(snapshot(t, "v2", goodListener(t), "127.0.10.3", "127.0.10.4"))
			if diff := cmp.Diff(wantConfig("v2", "127.0.10.3", "127.0.10.4"), nextConfig(t, configs), cmpOpts); diff != "" {
				t.Fatalf("config after endpoint update (-want +got):\n%s", diff)
			}

			// 3. A listener the compiler rejects is NACKed with the reason and
			// publishes nothing: the next config is the fixed v4.
			srv.set(snapshot(t, "v3", badListener(t), "127.0.10.3", "127.0.10.4"))
			select {
			case detail := <-srv.nacks:
				want := `listener "127.0.30.1_9080": filter_chains[0].filters[0]: unsupported filter "envoy.filters.network.redis_proxy"`
				if detail != want {
					t.Errorf("NACK error_detail = %q, want %q", detail, want)
				}
			case <-time.After(wait):
				t.Fatal("no NACK reached the server")
			}
			srv.set(snapshot(t, "v4", goodListener(t), "127.0.10.4"))
			if diff := cmp.Diff(wantConfig("v4", "127.0.10.4"), nextConfig(t, configs), cmpOpts); diff != "" {
				t.Fatalf("config after NACK and fix (-want +got):\n%s", diff)
			}

			// 4. The server goes away: the client keeps its config and
			// reports the stream down.
			srv.stop()
			waitFor(t, "Connected() == false", func() bool { return !c.Connected() })
			select {
			case cfg := <-configs:
				t.Fatalf("config published while disconnected: %+v", cfg)
			default:
			}

			// 5. A restarted server on the same address is found again and
			// its update arrives.
			srv.set(snapshot(t, "v5", goodListener(t), "127.0.10.4", "127.0.10.5"))
			srv.start()
			if diff := cmp.Diff(wantConfig("v5", "127.0.10.4", "127.0.10.5"), nextConfig(t, configs), cmpOpts); diff != "" {
				t.Fatalf("config after reconnect (-want +got):\n%s", diff)
			}
			waitFor(t, "Connected() == true", c.Connected)

			cancel()
			select {
			case err := <-runErr:
				if err != nil {
					t.Errorf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(wait):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no server", Options{Node: &corev3.Node{}, OnConfig: func(*runtime.Config) {}}, "Server is required"},
		{"no node", Options{Server: "127.0.0.1:1", OnConfig: func(*runtime.Config) {}}, "Node is required"},
		{"no callback", Options{Server: "127.0.0.1:1", Node: &corev3.Node{}}, "OnConfig is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := New(tc.opts).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestWarmingTimeout: a listener references a route table the server never
// sends; after WarmingTimeout the config is published without it (the
// listener then answers 404) rather than never.
func TestWarmingTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := newMgmtServer(t, ctx)
	defer func() { srv.stop() }()
	s, err := cachev3.NewSnapshot("v1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {goodListener(t)},
		resourcev3.ClusterType:  {edsCluster()},
		resourcev3.EndpointType: {endpoints("127.0.10.3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.set(s)
	configs := make(chan *runtime.Config, 8)
	c := New(Options{
		Server: srv.addr, Node: &corev3.Node{Id: nodeID}, Delta: true,
		OnConfig:       func(cfg *runtime.Config) { configs <- cfg },
		WarmingTimeout: 100 * time.Millisecond,
	})
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	want := wantConfig("v1", "127.0.10.3")
	want.Routes = map[string]*runtime.RouteTable{}
	if diff := cmp.Diff(want, nextConfig(t, configs), cmpOpts); diff != "" {
		t.Errorf("config after warming timeout (-want +got):\n%s", diff)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
}
