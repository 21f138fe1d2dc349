package xdsclient

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/compile"
	"github.com/trellis-mesh/trellis/internal/proxy/httpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	proxyruntime "github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// BenchmarkStateMemory reports the heap a sidecar keeps per cluster and
// per endpoint of config (issue 5: at most 20 KB per cluster and 2 KB per
// endpoint), as slopes between sizes the way the benchmark harness takes
// them from RSS: per cluster (1000×1 − 100×1) / 900, per endpoint
// (100×10 − 100×1) / 900. Each size applies CDS, EDS (endpoints with
// Istio's tlsMode metadata, as trellisd sends them), LDS and RDS to a
// state, builds the config, and builds what the listener manager builds
// from it (pickers and the request-path config); the live heap after a GC
// is compared with the heap before.
func BenchmarkStateMemory(b *testing.B) {
	var kept [3]uint64
	sizes := [3]struct{ clusters, endpoints int }{{100, 1}, {1000, 1}, {100, 10}}
	for b.Loop() {
		for i, sz := range sizes {
			before := liveHeap()
			s, cfg, hcfg := fillStateAndConfig(b, sz.clusters, sz.endpoints)
			kept[i] = liveHeap() - before
			runtime.KeepAlive(s)
			runtime.KeepAlive(cfg)
			runtime.KeepAlive(hcfg)
		}
	}
	b.ReportMetric(float64(kept[1]-kept[0])/900, "B/cluster")
	b.ReportMetric((float64(kept[2])-float64(kept[0]))/900, "B/endpoint")
	b.ReportMetric(float64(kept[0])/1024, "KB-100x1")
}

// fillStateAndConfig is fillState plus the listener manager's per-config
// structures: lb pickers and the httpproxy.Config, with their own pools
// and metrics.
func fillStateAndConfig(tb testing.TB, clusters, perCluster int) (*state, *proxyruntime.Config, *httpproxy.Config) {
	tb.Helper()
	s, cfg := fillState(tb, clusters, perCluster)
	pools := httpproxy.NewPools()
	tb.Cleanup(func() { _ = pools.Close() })
	m, err := httpproxy.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	return s, cfg, httpproxy.NewConfig(cfg, lb.Build(cfg.Clusters), pools, m)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// fillState applies clusters EDS clusters of perCluster endpoints each, one
// listener and one route table with a virtual host per cluster, as trellisd
// sends them to a sidecar, and builds the config.
func fillState(tb testing.TB, clusters, perCluster int) (*state, *proxyruntime.Config) {
	tb.Helper()
	t0 := time.Unix(1000, 0)
	s := newTestState()
	var cds, eds []proto.Message
	rt := &routev3.RouteConfiguration{Name: "9080"}
	for i := range clusters {
		name := fmt.Sprintf("outbound|9080||svc-%04d.load.svc.cluster.local", i)
		c := edsCluster()
		c.Name, c.EdsClusterConfig.ServiceName = name, name
		c.TransportSocketMatches = autoMTLS(tb, "outbound_.9080_._."+name)
		cds = append(cds, c)
		ips := make([]string, perCluster)
		for e := range ips {
			n := i*perCluster + e + 1
			ips[e] = fmt.Sprintf("127.2.%d.%d", n/256, n%256)
		}
		cla := endpoints(ips...)
		cla.ClusterName = name
		for _, lbe := range cla.Endpoints[0].LbEndpoints {
			lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			}}
		}
		eds = append(eds, cla)
		host := fmt.Sprintf("svc-%04d.load.svc.cluster.local", i)
		rt.VirtualHosts = append(rt.VirtualHosts, &routev3.VirtualHost{
			Name: host + ":9080", Domains: []string{host, host + ":9080"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
					RetryPolicy: &routev3.RetryPolicy{ // Istio's default
						RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", NumRetries: wrapperspb.UInt32(2),
						RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{previousHosts(tb)},
						HostSelectionRetryMaxAttempts: 5, RetriableStatusCodes: []uint32{503},
					},
				}},
			}},
		})
	}
	for _, r := range []*response{
		sotw(tb, compile.ClusterType, "1", cds...),
		sotw(tb, compile.EndpointType, "1", eds...),
		sotw(tb, compile.ListenerType, "1", goodListener(tb)),
		sotw(tb, compile.RouteType, "1", rt),
	} {
		if _, err := s.apply(r, t0); err != nil {
			tb.Fatalf("apply %s: %v", typeName(r.typeURL), err)
		}
	}
	cfg := s.build(t0)
	if cfg == nil || len(cfg.Clusters) < clusters {
		tb.Fatalf("built %v, want %d clusters", cfg, clusters)
	}
	return s, cfg
}

// autoMTLS are the transport_socket_matches trellisd gives a mesh cluster
// (Istio's auto mTLS): TLS with the SVID for endpoints with tlsMode istio,
// plain text for the rest.
func autoMTLS(tb testing.TB, sni string) []*clusterv3.Cluster_TransportSocketMatch {
	tb.Helper()
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := anypb.New(&rawbufferv3.RawBuffer{})
	if err != nil {
		tb.Fatal(err)
	}
	return []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx}}},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: raw}}},
	}
}

func previousHosts(tb testing.TB) *routev3.RetryPolicy_RetryHostPredicate {
	tb.Helper()
	a, err := anypb.New(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		tb.Fatal(err)
	}
	return &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.previous_hosts", ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: a}}
}
