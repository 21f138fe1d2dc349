package translator

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/google/go-cmp/cmp"
)

const visibilityServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: ns1}
spec: {hosts: [a.ns1.svc.cluster.local], location: MESH_INTERNAL, ports: [{number: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ns2}
spec: {hosts: [b.ns2.svc.cluster.local], location: MESH_INTERNAL, ports: [{number: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: ns2}
spec: {hosts: [private.ns2.svc.cluster.local], exportTo: [.], ports: [{number: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: to-ns1, namespace: ns2}
spec: {hosts: [to-ns1.ns2.svc.cluster.local], exportTo: [ns1], ports: [{number: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: ns2}
spec: {hosts: [hidden.ns2.svc.cluster.local], exportTo: ["~"], ports: [{number: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: ns3}
spec: {hosts: [api.example.com], resolution: DNS, ports: [{number: 443, name: tls}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w, namespace: ns1}
spec: {address: 127.0.5.1, labels: {app: w}}
`

// outboundHosts lists "HOST:PORT" of the outbound clusters without subset.
func outboundHosts(res *Resources) []string {
	var out []string
	for _, name := range sortedKeys(res.Clusters) {
		if rest, ok := strings.CutPrefix(name, "outbound|"); ok {
			parts := strings.Split(rest, "|")
			if parts[1] == "" {
				out = append(out, parts[2]+":"+parts[0])
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestVisibility(t *testing.T) {
	tests := []struct {
		name    string
		sidecar string // extra YAML
		want    []string
	}{
		{"no Sidecar: exportTo only", "", []string{"a.ns1.svc.cluster.local:80", "api.example.com:443", "b.ns2.svc.cluster.local:80", "to-ns1.ns2.svc.cluster.local:80"}},
		{"own namespace only", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: [./*]}]}`, []string{"a.ns1.svc.cluster.local:80"}},
		{"none", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["~/*"]}]}`, nil},
		{"namespace wildcard and exact host in any namespace, union of egress entries", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec:
  egress:
  - hosts: [ns2/*]
  - hosts: ["*/api.example.com", "*/private.ns2.svc.cluster.local"]`, []string{"api.example.com:443", "b.ns2.svc.cluster.local:80", "to-ns1.ns2.svc.cluster.local:80"}},
		{"VirtualService destinations join the scope", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: [./*]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: ns1}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: b.ns2.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unselected, namespace: ns2}
spec:
  hosts: [b]
  http: [{route: [{destination: {host: to-ns1}}]}]`, []string{"a.ns1.svc.cluster.local:80", "b.ns2.svc.cluster.local:80"}},
		{"wildcard host", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["*/*.example.com"]}]}`, []string{"api.example.com:443"}},
		{"workload selector beats namespace default", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: [./*]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: w, namespace: ns1}
spec: {workloadSelector: {labels: {app: w}}, egress: [{hosts: [ns3/*]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: other, namespace: ns1}
spec: {workloadSelector: {labels: {app: other}}, egress: [{hosts: [ns2/*]}]}`, []string{"api.example.com:443"}},
		{"root namespace default applies; . is the proxy's namespace", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: [./*, ns3/*]}]}`, []string{"a.ns1.svc.cluster.local:80", "api.example.com:443"}},
		{"namespace default beats root", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: [ns3/*]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec: {egress: [{hosts: ["*/b.ns2.svc.cluster.local"]}]}`, []string{"b.ns2.svc.cluster.local:80"}},
		{"selector Sidecar in another namespace is ignored", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: w, namespace: ns2}
spec: {workloadSelector: {labels: {app: w}}, egress: [{hosts: ["~/*"]}]}`, []string{"a.ns1.svc.cluster.local:80", "api.example.com:443", "b.ns2.svc.cluster.local:80", "to-ns1.ns2.svc.cluster.local:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshotOf(t, visibilityServices+"\n---\n"+tt.sidecar)
			res := Translate(snap, Proxy{Type: Sidecar, Namespace: "ns1", Name: "w"})
			validateAll(t, res)
			if diff := cmp.Diff(tt.want, outboundHosts(res)); diff != "" {
				t.Errorf("visible services mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDestinationRulePolicy(t *testing.T) {
	const base = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: ns2}
spec: {hosts: [svc.ns2.svc.cluster.local], location: MESH_INTERNAL, ports: [{number: 80, name: http}, {number: 81, name: grpc}]}
`
	type policy struct {
		LB      string
		Timeout string
		HTTP2   bool
	}
	tests := []struct {
		name string
		drs  string
		want map[string]policy // cluster → policy
	}{
		{"defaults", "", map[string]policy{
			"outbound|80||svc.ns2.svc.cluster.local": {"ROUND_ROBIN", "10s", false},
			"outbound|81||svc.ns2.svc.cluster.local": {"ROUND_ROBIN", "10s", true},
		}},
		{"service namespace, subset and port-level overrides", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: ns2}
spec:
  host: svc
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {tcp: {connectTimeout: 3s}}
    portLevelSettings: [{port: {number: 81}, loadBalancer: {simple: ROUND_ROBIN}}]
  subsets:
  - {name: fast, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 1s}}, loadBalancer: {simple: RANDOM}}}`, map[string]policy{
			"outbound|80||svc.ns2.svc.cluster.local": {"LEAST_REQUEST", "3s", false},
			// Port-level settings replace the top level wholesale (Istio:
			// "port level policies do not inherit"): connectTimeout is the default.
			"outbound|81||svc.ns2.svc.cluster.local":     {"ROUND_ROBIN", "10s", true},
			"outbound|80|fast|svc.ns2.svc.cluster.local": {"RANDOM", "1s", false},
			"outbound|81|fast|svc.ns2.svc.cluster.local": {"RANDOM", "1s", true},
		}},
		{"proxy namespace beats service namespace; exact beats wildcard", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: ns2}
spec: {host: svc, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a-wild, namespace: ns1}
spec: {host: "*.ns2.svc.cluster.local", trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b-exact, namespace: ns1}
spec: {host: svc.ns2.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}`, map[string]policy{
			"outbound|80||svc.ns2.svc.cluster.local": {"LEAST_REQUEST", "10s", false},
			"outbound|81||svc.ns2.svc.cluster.local": {"LEAST_REQUEST", "10s", true},
		}},
		{"root namespace fallback; private rule elsewhere ignored", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh, namespace: istio-system}
spec: {host: "*", trafficPolicy: {connectionPool: {tcp: {connectTimeout: 7s}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: private, namespace: ns2}
spec: {host: svc, exportTo: [.], trafficPolicy: {loadBalancer: {simple: RANDOM}}}`, map[string]policy{
			"outbound|80||svc.ns2.svc.cluster.local": {"ROUND_ROBIN", "7s", false},
			"outbound|81||svc.ns2.svc.cluster.local": {"ROUND_ROBIN", "7s", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(snapshotOf(t, base+"\n---\n"+tt.drs), Proxy{Type: Sidecar, Namespace: "ns1", Name: "client"})
			validateAll(t, res)
			got := map[string]policy{}
			for name, m := range res.Clusters {
				c := m.(*clusterv3.Cluster)
				if name == blackHoleCluster || name == passthroughCluster {
					continue
				}
				_, h2 := c.GetTypedExtensionProtocolOptions()[nameHTTPProtocolOpt]
				got[name] = policy{c.GetLbPolicy().String(), c.GetConnectTimeout().AsDuration().String(), h2}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("cluster policies mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkTranslateSidecar(b *testing.B) {
	snap := bookinfo(b)
	p := Proxy{Type: Sidecar, Namespace: "default", Name: "productpage-v1"}
	b.ReportAllocs()
	for b.Loop() {
		Translate(snap, p)
	}
}
