package translator

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// cacheExtraClients are workloads in other localities, networks, labels and
// namespaces than policyBase's client, so that one cache serves proxies
// whose clusters must differ (locality priorities, distribute weights,
// failoverPriority, the DestinationRule namespace).
const cacheExtraClients = `
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-west, namespace: default}
spec: {address: 127.0.1.2, labels: {app: client, version: v2}, locality: us-west/c/1, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-eu, namespace: default}
spec: {address: 127.0.1.3, labels: {app: client, version: v1}, locality: eu/d/1, network: n2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-b, namespace: default}
spec: {address: 127.0.1.4, labels: {app: client, version: v2}, locality: us-east/b/1, network: n2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: other}
spec: {address: 127.0.1.5, labels: {app: client}, locality: us-east/a/1, network: n1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: other-view, namespace: other}
spec:
  host: svc.default.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2}
    loadBalancer: {simple: RANDOM, localityLbSetting: {failoverPriority: [topology.istio.io/network, "version=v1"]}}
`

// largeMeshVariety adds to largeMesh a Sidecar narrowing ns1's egress, a
// DestinationRule in ns0 that ns0's proxies use for every ns1 service
// (distribute), and a consistent hash for ns2 seen from ns3.
const largeMeshVariety = `
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec:
  egress: [{hosts: ["./*", "ns2/svc2.ns2.svc.cluster.local"]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ns1-wide, namespace: ns0}
spec:
  host: "*.ns1.svc.cluster.local"
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute: [{from: region1/zone0/*, to: {"region1/zone1/*": 100}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hash, namespace: ns3}
spec:
  host: "*.ns2.svc.cluster.local"
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
`

// cacheSourceLabels routes by the client's labels and namespace, so that
// proxies of one namespace must not share route tables (viewKey).
const cacheSourceLabels = `
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-source, namespace: ns0}
spec:
  hosts: [svc0.ns0.svc.cluster.local]
  http:
  - match: [{sourceLabels: {version: v2}}]
    route: [{destination: {host: svc1.ns1.svc.cluster.local}}]
  - match: [{sourceNamespace: ns2}]
    route: [{destination: {host: svc2.ns2.svc.cluster.local}}]
  - route: [{destination: {host: svc0.ns0.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-v2, namespace: ns0}
spec: {address: 127.0.1.7, labels: {app: client, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-v2, namespace: ns2}
spec: {address: 127.0.1.8, labels: {app: client, version: v2}}
`

type cacheCase struct {
	name    string
	snap    *snapshot.Snapshot
	proxies []Proxy
}

func cacheCases(t *testing.T) []cacheCase {
	var cases []cacheCase
	cases = append(cases, cacheCase{"bookinfo", bookinfo(t), []Proxy{
		{ID: "sidecar~127.0.10.1~productpage-v1.default~default.svc.cluster.local", Type: Sidecar, Namespace: "default", Name: "productpage-v1", Address: "127.0.10.1"},
		{Type: Sidecar, Namespace: "default", Name: "reviews-v1"},
		{Type: Sidecar, Namespace: "other", Name: "nobody", Address: "127.0.50.1"},
		{Type: Router, Namespace: "istio-system", Name: "istio-ingressgateway"},
		{Type: Proxyless, Namespace: "default"},
		{Type: Proxyless},
	}})
	cases = append(cases,
		cacheCase{"traffic", snapshotOf(t, trafficMesh), []Proxy{
			{Type: Sidecar, Namespace: "default", Name: "client"},
			{Type: Proxyless, Namespace: "default"},
		}},
		cacheCase{"gateway", snapshotOf(t, gatewayMesh), []Proxy{
			{Type: Router, Namespace: "istio-system", Name: "ingress"},
			{Type: Sidecar, Namespace: "istio-system", Name: "ingress"},
		}},
		cacheCase{"security", secSnapshot(t, "", nil), []Proxy{webProxy(), clientProxy(), {Type: Proxyless, Namespace: "app"}}},
	)
	policyProxies := []Proxy{
		{Type: Sidecar, Namespace: "default", Name: "client", Address: "127.0.1.1"},
		{Type: Sidecar, Namespace: "default", Name: "client-west"},
		{Type: Sidecar, Namespace: "default", Name: "client-eu"},
		{Type: Sidecar, Namespace: "default", Name: "client-b"},
		{Type: Sidecar, Namespace: "other", Name: "client"},
		{Type: Sidecar, Namespace: "default", Name: "unknown"},
		{Type: Proxyless, Namespace: "default"},
		{Type: Router, Namespace: "default", Name: "client-eu"},
	}
	for _, pc := range policyCases {
		cases = append(cases, cacheCase{"policy/" + pc.name, snapshotOf(t, policyBase+drYAML(pc.dr)+cacheExtraClients), policyProxies})
	}
	large := snapshotOf(t, largeMeshYAML(40, 3)+largeMeshVariety)
	var lp []Proxy
	for ns := range 4 {
		lp = append(lp,
			Proxy{Type: Sidecar, Namespace: fmt.Sprintf("ns%d", ns), Name: "client"},
			Proxy{Type: Sidecar, Namespace: fmt.Sprintf("ns%d", ns), Name: "svc1-0"},
			Proxy{Type: Proxyless, Namespace: fmt.Sprintf("ns%d", ns)},
		)
	}
	cases = append(cases, cacheCase{"large", large, lp})
	labelled := snapshotOf(t, largeMeshYAML(8, 1)+cacheSourceLabels)
	cases = append(cases, cacheCase{"source-labels", labelled, []Proxy{
		{Type: Sidecar, Namespace: "ns0", Name: "client", Address: "127.0.2.1"},
		{Type: Sidecar, Namespace: "ns0", Name: "client-v2", Address: "127.0.2.2"},
		{Type: Sidecar, Namespace: "ns0", Name: "unknown", Address: "127.0.2.3"},
		{Type: Sidecar, Namespace: "ns2", Name: "client-v2", Address: "127.0.2.4"},
		{Type: Sidecar, Namespace: "ns2", Name: "client", Address: "127.0.2.5"},
		{Type: Proxyless, Namespace: "ns0"},
	}})
	return cases
}

// TestTranslateCachedEqualsTranslate: every proxy translated through one
// shared cache, in two orders and concurrently, gets exactly what Translate
// gives it alone. A missing input in a cache key shows up here as a proxy
// receiving another proxy's cluster, endpoints or route.
func TestTranslateCachedEqualsTranslate(t *testing.T) {
	for _, tc := range cacheCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]*Resources, len(tc.proxies))
			for i, p := range tc.proxies {
				want[i] = Translate(tc.snap, p)
			}
			check := func(t *testing.T, i int, got *Resources) {
				t.Helper()
				if diff := cmp.Diff(want[i], got, protocmp.Transform()); diff != "" {
					t.Errorf("proxy %+v: cached differs (-Translate +cached):\n%s", tc.proxies[i], diff)
				}
			}
			t.Run("in-order", func(t *testing.T) {
				c := NewCache()
				for i, p := range tc.proxies {
					check(t, i, TranslateCached(tc.snap, p, c))
				}
			})
			t.Run("reversed", func(t *testing.T) {
				c := NewCache()
				for _, i := range slices.Backward(seq(len(tc.proxies))) {
					check(t, i, TranslateCached(tc.snap, tc.proxies[i], c))
				}
			})
			t.Run("concurrent", func(t *testing.T) {
				c := NewCache()
				got := make([]*Resources, len(tc.proxies))
				var wg sync.WaitGroup
				for i, p := range tc.proxies {
					wg.Go(func() { got[i] = TranslateCached(tc.snap, p, c) })
				}
				wg.Wait()
				for i := range got {
					check(t, i, got[i])
				}
			})
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestCacheFollowsSnapshots: a cache moves to each newer snapshot, and a
// translation against an older one (a push still in flight) neither reads
// nor disturbs the newer entries.
func TestCacheFollowsSnapshots(t *testing.T) {
	v1 := snapshotOf(t, policyBase+cacheExtraClients)
	v2 := snapshotOf(t, policyBase+drYAML(policyCase(t, "locality-failover"))+cacheExtraClients)
	v2.Version = 2
	p := Proxy{Type: Sidecar, Namespace: "default", Name: "client-eu"}
	c := NewCache()
	for _, step := range []struct {
		name string
		snap *snapshot.Snapshot
	}{{"v1", v1}, {"v2", v2}, {"v1 late", v1}, {"v2 again", v2}} {
		if diff := cmp.Diff(Translate(step.snap, p), TranslateCached(step.snap, p, c), protocmp.Transform()); diff != "" {
			t.Errorf("%s: cached differs (-Translate +cached):\n%s", step.name, diff)
		}
	}
	if c.snap != v2 {
		t.Errorf("cache holds snapshot version %d, want 2", c.snap.Version)
	}
}

// TestCacheSharesRouteTables: sidecars of one namespace without a Sidecar
// get the very same http_proxy route table; with a sourceLabels match in
// the mesh, proxies whose labels differ do not.
func TestCacheSharesRouteTables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		share bool
	}{
		{"no source labels", largeMeshYAML(8, 1), true},
		{"source labels", largeMeshYAML(8, 1) + cacheSourceLabels, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshotOf(t, tc.yaml)
			c := NewCache()
			a := TranslateCached(snap, Proxy{Type: Sidecar, Namespace: "ns0", Name: "client", Address: "127.0.2.1"}, c)
			b := TranslateCached(snap, Proxy{Type: Sidecar, Namespace: "ns0", Name: "client-v2", Address: "127.0.2.2"}, c)
			ra, rb := a.Routes[httpProxyName], b.Routes[httpProxyName]
			if ra == nil || rb == nil {
				t.Fatalf("no %s route table: %v, %v", httpProxyName, ra, rb)
			}
			if got := ra == rb; got != tc.share {
				t.Errorf("route tables shared = %v, want %v", got, tc.share)
			}
		})
	}
}

// TestCacheSharesAcrossProxies: proxies that see a service alike get the
// very same cluster and endpoint messages.
func TestCacheSharesAcrossProxies(t *testing.T) {
	snap := largeMesh(t, 20, 2)
	c := NewCache()
	a := TranslateCached(snap, Proxy{Type: Sidecar, Namespace: "ns0", Name: "client"}, c)
	b := TranslateCached(snap, Proxy{Type: Sidecar, Namespace: "ns2", Name: "client"}, c)
	const name = "outbound|8080||svc1.ns1.svc.cluster.local"
	if a.Clusters[name] == nil || a.Clusters[name] != b.Clusters[name] {
		t.Errorf("cluster %s not shared", name)
	}
	if a.Endpoints[name] == nil || a.Endpoints[name] != b.Endpoints[name] {
		t.Errorf("endpoints %s not shared", name)
	}
}
