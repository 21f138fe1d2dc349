package xdsclient

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/compile"
)

// BenchmarkStateMemory reports the heap the client's state keeps per
// cluster and per endpoint (issue 5: at most 20 KB per cluster and 2 KB per
// endpoint for the whole proxy): CDS, EDS, LDS and RDS for N services of M
// endpoints are applied and built, and the live heap is compared with an
// empty state's.
func BenchmarkStateMemory(b *testing.B) {
	for _, sz := range []struct{ clusters, endpoints int }{{100, 1}, {1000, 1}, {100, 10}} {
		b.Run(fmt.Sprintf("clusters=%d/endpoints=%d", sz.clusters, sz.endpoints), func(b *testing.B) {
			var perCluster, perEndpoint float64
			for b.Loop() {
				before := liveHeap()
				s, cfg := fillState(b, sz.clusters, sz.endpoints)
				after := liveHeap()
				runtime.KeepAlive(s)
				runtime.KeepAlive(cfg)
				perCluster = float64(after-before) / float64(sz.clusters)
				perEndpoint = float64(after-before) / float64(sz.clusters*sz.endpoints)
			}
			b.ReportMetric(perCluster, "B/cluster")
			b.ReportMetric(perEndpoint, "B/endpoint")
		})
	}
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
func fillState(tb testing.TB, clusters, perCluster int) (*state, any) {
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

