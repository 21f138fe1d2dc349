package xdsclient

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

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
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}},
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
