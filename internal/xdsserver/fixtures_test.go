package xdsserver

import (
	"fmt"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// fakeTranslator returns hand-built resources per node id. It stands in for
// the translator, which is tested on its own.
type fakeTranslator struct {
	mu    sync.Mutex
	byID  map[string]*translator.Resources
	calls int
}

func (f *fakeTranslator) set(id string, r *translator.Resources) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byID == nil {
		f.byID = make(map[string]*translator.Resources)
	}
	f.byID[id] = r
}

func (f *fakeTranslator) Translate(_ *snapshot.Snapshot, p translator.Proxy) *translator.Resources {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.byID[p.ID]
}

func fakeParseNode(n *corev3.Node) translator.Proxy { return translator.Proxy{ID: n.GetId()} }

// ads is Envoy's aggregated config source (docs/xds.md, "Transport").
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func edsCluster(name string, timeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(timeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

func loadAssignment(cluster, ip string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "local"},
			LoadBalancingWeight: wrapperspb.UInt32(1), // gRPC ignores a locality without one
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       ip,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
				HealthStatus:        corev3.HealthStatus_HEALTHY,
				LoadBalancingWeight: wrapperspb.UInt32(1),
			}},
		}},
	}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatalf("anypb.New: %v", err)
	}
	return a
}

// apiListener is what proxyless gRPC clients get: an HttpConnectionManager
// with RDS over ADS and the router filter (docs/xds.md, "Proxyless gRPC").
func apiListener(t testing.TB, name, routeName string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, hcm)},
	}
}

func routeTo(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

// clustersOnly is a proxy config with one EDS cluster and its endpoints.
func clustersOnly(name string, timeout time.Duration) *translator.Resources {
	return &translator.Resources{
		Clusters:  map[string]proto.Message{name: edsCluster(name, timeout)},
		Endpoints: map[string]proto.Message{name: loadAssignment(name, "127.0.20.1", 9080)},
	}
}

// metricValue reads one counter or gauge sample from reg; labels are
// name=value pairs.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func proxyStatus(s *Server, id string) (ProxyStatus, bool) {
	for _, ps := range s.Status() {
		if ps.NodeID == id {
			return ps, true
		}
	}
	return ProxyStatus{}, false
}

func typeStatusOf(ps ProxyStatus, typeURL string) TypeStatus {
	for _, ts := range ps.Types {
		if ts.TypeURL == typeURL {
			return ts
		}
	}
	return TypeStatus{}
}

func nodeID(name string) string {
	return fmt.Sprintf("sidecar~127.0.10.1~%s.default~default.svc.cluster.local", name)
}

func nodeProto(id string) *corev3.Node { return &corev3.Node{Id: id} }

// socketListener is a sidecar's outbound HTTP listener using RDS route.
func socketListener(t testing.TB, name, route string) *listenerv3.Listener {
	api := apiListener(t, name, route)
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.10.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: api.GetApiListener().GetApiListener()},
		}}}},
	}
}
