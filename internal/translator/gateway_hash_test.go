package translator

import (
	"testing"
)

// gatewayHashMesh is an ingress gateway serving www.example.com on 8080 with
// two VirtualService routes: /api to subset v1 and the rest to web; web's
// DestinationRule hashes on a header, and subset v1 on the source IP.
const gatewayHashMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: default}
spec: {address: 127.0.6.1, labels: {app: web, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress, namespace: istio-system}
spec: {address: 127.0.5.1, labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*/www.example.com"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: www, namespace: default}
spec:
  hosts: [www.example.com]
  gateways: [istio-system/gw]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web, subset: v1}}]
  - name: all
    route: [{destination: {host: web}}]
`

// TestGatewayHashPolicy: a request through an ingress gateway to a service
// whose DestinationRule has consistentHash carries the route's hash policy,
// as a sidecar's does (Istio sets hash_policy on gateway routes too).
func TestGatewayHashPolicy(t *testing.T) {
	res := Translate(snapshotOf(t, gatewayHashMesh), Proxy{Type: Router, Namespace: "istio-system", Name: "ingress"})
	validateAll(t, res)
	rc := mustRoutes(t, res, "http.8080")
	tests := []struct {
		name, path  string
		wantCluster string
		wantHash    string
	}{
		{"host policy", "/", "cluster outbound|80||web.default.svc.cluster.local", "header:x-user"},
		{"subset policy", "/api/users", "cluster outbound|80|v1|web.default.svc.cluster.local", "source_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := simulate(t, rc, request{host: "www.example.com:8080", path: tt.path})
			if out.action != tt.wantCluster {
				t.Fatalf("request went to %q, want %q", out.action, tt.wantCluster)
			}
			if got := describeHash(routeFor(rc, out)); got != tt.wantHash {
				t.Errorf("hash policy %q, want %q", got, tt.wantHash)
			}
		})
	}
}
