package translator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// largeMesh is the scale of issue 5: services ServiceEntries in four
// namespaces, each selecting perService WorkloadEntries spread over three
// zones, a DestinationRule with outlier detection (so locality priorities
// apply) on every tenth service, and one client workload per namespace.
func largeMesh(tb testing.TB, services, perService int) *snapshot.Snapshot {
	tb.Helper()
	return snapshotOf(tb, largeMeshYAML(services, perService))
}

func largeMeshYAML(services, perService int) string {
	var sb strings.Builder
	nsOf := func(i int) string { return fmt.Sprintf("ns%d", i%4) }
	for i := range services {
		ns := nsOf(i)
		fmt.Fprintf(&sb, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc%d, namespace: %s}
spec:
  hosts: [svc%d.%s.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  workloadSelector: {labels: {app: svc%d}}
---
`, i, ns, i, ns, i)
		for j := range perService {
			n := i*perService + j
			fmt.Fprintf(&sb, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc%d-%d, namespace: %s, labels: {app: svc%d, security.istio.io/tlsMode: istio}}
spec: {address: 127.%d.%d.%d, serviceAccount: svc%d, locality: region1/zone%d}
---
`, i, j, ns, i, 1+n/65536, (n/256)%256, n%256, i, j%3)
		}
		if i%10 == 0 {
			fmt.Fprintf(&sb, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc%d, namespace: %s}
spec:
  host: svc%d
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}
  subsets: [{name: v1, labels: {app: svc%d}}]
---
`, i, ns, i, i)
		}
	}
	for ns := range 4 {
		fmt.Fprintf(&sb, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: ns%d, labels: {app: client}}
spec: {address: 127.200.0.%d, serviceAccount: client, locality: region1/zone%d}
---
`, ns, ns+1, ns%3)
	}
	return sb.String()
}

// largeMeshProxies are n sidecars in the four namespaces of largeMesh.
func largeMeshProxies(n int) []Proxy {
	out := make([]Proxy, n)
	for i := range out {
		out[i] = Proxy{Type: Sidecar, Namespace: fmt.Sprintf("ns%d", i%4), Name: "client"}
	}
	return out
}

func BenchmarkTranslate1000Services(b *testing.B) {
	snap := largeMesh(b, 1000, 10)
	p := largeMeshProxies(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		Translate(snap, p)
	}
}

// BenchmarkTranslate1000Services100Proxies is one push: 100 sidecars
// translated against one snapshot.
func BenchmarkTranslate1000Services100Proxies(b *testing.B) {
	snap := largeMesh(b, 1000, 10)
	proxies := largeMeshProxies(100)
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range proxies {
			Translate(snap, p)
		}
	}
}

// BenchmarkTranslateCached1000Services is the first proxy of a push: a
// fresh cache each time, so every cluster is built.
func BenchmarkTranslateCached1000Services(b *testing.B) {
	snap := largeMesh(b, 1000, 10)
	p := largeMeshProxies(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		TranslateCached(snap, p, NewCache())
	}
}

// BenchmarkTranslateCached1000Services100Proxies is one push to 100
// sidecars sharing a cache, as xdsserver does after each snapshot.
func BenchmarkTranslateCached1000Services100Proxies(b *testing.B) {
	snap := largeMesh(b, 1000, 10)
	proxies := largeMeshProxies(100)
	b.ReportAllocs()
	for b.Loop() {
		c := NewCache()
		for _, p := range proxies {
			TranslateCached(snap, p, c)
		}
	}
}
