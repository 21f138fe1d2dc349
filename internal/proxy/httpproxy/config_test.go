package httpproxy

import (
	"fmt"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// meshClusters returns n outbound clusters shaped as trellisd emits them:
// auto mTLS (a tlsMode-istio match and a plain one), one endpoint each.
func meshClusters(n int) map[string]*runtime.Cluster {
	out := make(map[string]*runtime.Cluster, n)
	for i := range n {
		host := fmt.Sprintf("svc-%d.bench.svc.cluster.local", i)
		name := "outbound|8080||" + host
		out[name] = &runtime.Cluster{
			Name: name, ConnectTimeout: 10 * time.Second,
			Endpoints: []runtime.Endpoint{{Host: fmt.Sprintf("127.4.%d.%d", i/250, i%250+1), Port: 8080, Weight: 1, Healthy: true}},
			TLSMatches: []runtime.TransportSocketMatch{
				{Name: "tlsMode-istio", Match: map[string]string{"tlsMode": "istio"}, TLS: &runtime.UpstreamTLS{
					SNI: "outbound_.8080_._." + host, ALPN: []string{"istio-peer-exchange", "istio", "http/1.1"},
					CertSecret: "default", RootSecret: "ROOTCA", MinVersion: 0x0303,
					SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "spiffe://cluster.local/ns/bench/sa/svc"}}},
				}},
				{Name: "tlsMode-disabled", Match: map[string]string{}},
			},
		}
	}
	return out
}

// BenchmarkNewConfigPerCluster reports the heap a config keeps per cluster
// (issue 5: at most 20 KB per cluster of RSS): B/op of building the
// request-path config of 1000 mesh clusters, divided by 1000, as
// retained-B/cluster after a GC.
func BenchmarkNewConfigPerCluster(b *testing.B) {
	const n = 1000
	cfg := &runtime.Config{Clusters: meshClusters(n), Routes: map[string]*runtime.RouteTable{}}
	pickers := lb.Build(cfg.Clusters)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	pools := NewPools()
	b.Cleanup(func() { _ = pools.Close() })
	b.ReportAllocs()
	var keep *Config
	for b.Loop() {
		keep = NewConfig(cfg, pickers, pools, m)
	}
	_ = keep
	// What one config of n clusters keeps, with its own pools and metrics.
	fresh := NewPools()
	defer func() { _ = fresh.Close() }()
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	fm, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	keep = NewConfig(cfg, lb.Build(cfg.Clusters), fresh, fm)
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	goruntime.KeepAlive(keep)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "retained-B/cluster")
}

// TestTLSTransportsOnFirstUse checks that a cluster's TLS transports are
// looked up on its first TLS request, shared with a later config of the
// same settings, and that the HTTP/1.1 client survives that config's
// attach (only clients no config can use are closed).
func TestTLSTransportsOnFirstUse(t *testing.T) {
	cfg := &runtime.Config{Clusters: meshClusters(2), Routes: map[string]*runtime.RouteTable{}}
	pools := NewPools()
	t.Cleanup(func() { _ = pools.Close() })
	c1 := NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil)
	name := "outbound|8080||svc-0.bench.svc.cluster.local"
	u := c1.clusters[name]
	if n := len(u.ext.tls); n != 1 {
		t.Fatalf("%d TLS settings, want 1 (tlsMode-istio)", n)
	}
	if u.ext.tls[0].h1.Load() != nil || len(pools.ext.h1) != 1 {
		t.Fatalf("TLS client built before use (%d clients)", len(pools.ext.h1))
	}
	ep := runtime.Endpoint{Host: "127.4.0.1", Port: 8080, SocketMatch: map[string]string{"tlsMode": "istio"}}
	rt := u.transportForEndpoint(&ep, false, false)
	if rt != u.ext.tls[0].h1.Load() || rt == u.h1 {
		t.Fatalf("transport %T is not the cluster's TLS client", rt)
	}
	plain := runtime.Endpoint{Host: "127.4.0.1", Port: 8080}
	if got := u.transportForEndpoint(&plain, false, false); got != u.h1 {
		t.Fatalf("plain endpoint got %T, want the plain client", got)
	}
	c2 := NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil)
	if got := c2.clusters[name].transportForEndpoint(&ep, false, false); got != rt {
		t.Fatal("the next config built another TLS client for the same settings")
	}
	if len(pools.ext.h1) != 2 {
		t.Fatalf("%d HTTP/1.1 clients after the second attach, want 2 (plain and TLS)", len(pools.ext.h1))
	}
}
