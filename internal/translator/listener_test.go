package translator

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"
)

// describeListener summarises a listener as "ADDR:PORT DIRECTION http ROUTE"
// or "ADDR:PORT DIRECTION tcp CLUSTER".
func describeListener(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	sa := l.GetAddress().GetSocketAddress()
	prefix := sa.GetAddress() + ":" + portString(sa.GetPortValue()) + " " + l.GetTrafficDirection().String()
	f := l.GetFilterChains()[0].GetFilters()[0]
	switch f.GetName() {
	case nameHCM:
		h := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		return prefix + " http " + h.GetRds().GetRouteConfigName()
	case nameTCPProxy:
		tp := &tcpv3.TcpProxy{}
		if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
			t.Fatal(err)
		}
		return prefix + " tcp " + tp.GetCluster()
	}
	t.Fatalf("unexpected filter %s", f.GetName())
	return ""
}

func TestListeners(t *testing.T) {
	const mesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: app}
spec: {hosts: [db.app.svc.cluster.local], location: MESH_INTERNAL, ports: [{number: 5432, name: tcp}], endpoints: [{address: 127.0.9.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec: {hosts: [web.app.svc.cluster.local], location: MESH_INTERNAL, ports: [{number: 8000, name: web}], endpoints: [{address: 127.0.9.2}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm, namespace: app}
spec: {address: 127.0.8.1, labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: edge}
spec: {address: 127.0.8.2, labels: {gw: edge}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm, namespace: app}
spec:
  workloadSelector: {labels: {app: vm}}
  ingress:
  - {port: {number: 8080, name: http-api}, defaultEndpoint: "0.0.0.0:18080"}
  - {port: {number: 9000, protocol: TCP, name: raw}, defaultEndpoint: "127.0.7.1:9000"}
  - {port: {number: 9100, name: tcp-alt}, bind: 127.0.8.99, defaultEndpoint: "127.0.7.1:9100"}
  - {port: {number: 9200, name: tcp-unix}, defaultEndpoint: "unix:///var/run/app.sock"}
  egress:
  - {port: {number: 5432, name: tcp}, bind: 127.0.30.9, hosts: [./*]}
  - {port: {number: 6000}, bind: 127.0.30.9, hosts: [./*]}
  - {port: {number: 8000}, bind: 127.0.30.9, hosts: [./*]}
  - {port: {number: 8000}, hosts: [./*]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: edge}
spec:
  selector: {gw: edge}
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: [app/web.example.com, "./*.edge.example.com"]}
  - {port: {number: 9090, name: http2, protocol: HTTP2}, bind: 127.0.8.3, hosts: ["*"]}
  - {port: {number: 8443, name: https, protocol: HTTPS}, hosts: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: [web.example.com, "*.edge.example.com"]
  gateways: [edge/edge]
  http: [{name: to-web, route: [{destination: {host: web}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local, namespace: edge}
spec:
  hosts: [api.edge.example.com, other.example.com]
  gateways: [edge]
  http: [{name: local, directResponse: {status: 204}}]
`
	snap := snapshotOf(t, mesh)
	tests := []struct {
		name       string
		proxy      Proxy
		wantL      map[string]string
		wantRoutes map[string][]string // route table → vhost domains
	}{
		{"sidecar", Proxy{Type: Sidecar, Namespace: "app", Name: "vm"}, map[string]string{
			"inbound_127.0.8.1_8080":  "127.0.8.1:8080 INBOUND http inbound|8080||",
			"inbound_127.0.8.1_9000":  "127.0.8.1:9000 INBOUND tcp inbound|9000||",
			"inbound_127.0.8.99_9100": "127.0.8.99:9100 INBOUND tcp inbound|9100||",
			"127.0.30.9_5432":         "127.0.30.9:5432 OUTBOUND tcp outbound|5432||db.app.svc.cluster.local",
			"127.0.30.9_6000":         "127.0.30.9:6000 OUTBOUND tcp PassthroughCluster",
			"127.0.30.9_8000":         "127.0.30.9:8000 OUTBOUND tcp outbound|8000||web.app.svc.cluster.local",
			"http_proxy":              "127.0.8.1:15080 OUTBOUND http http_proxy",
		}, map[string][]string{
			"inbound|8080||": {"*"},
			"http_proxy":     {"*"}, // ALLOW_ANY's allow_any virtual host
		}},
		{"proxy without workload", Proxy{Type: Sidecar, Namespace: "app", Name: "ghost"}, map[string]string{}, map[string][]string{}},
		{"gateway", Proxy{Type: Router, Namespace: "edge", Name: "gw"}, map[string]string{
			"127.0.8.2_8080": "127.0.8.2:8080 OUTBOUND http http.8080",
			"127.0.8.3_9090": "127.0.8.3:9090 OUTBOUND http http.9090",
		}, map[string][]string{
			"http.8080": {"web.example.com", "web.example.com:8080", "api.edge.example.com", "api.edge.example.com:8080"},
			"http.9090": {"web.example.com", "web.example.com:9090", "*.edge.example.com", "*.edge.example.com:9090",
				"api.edge.example.com", "api.edge.example.com:9090", "other.example.com", "other.example.com:9090"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(snap, tt.proxy)
			validateAll(t, res)
			got := map[string]string{}
			for name, m := range res.Listeners {
				got[name] = describeListener(t, m.(*listenerv3.Listener))
			}
			if diff := cmp.Diff(tt.wantL, got); diff != "" {
				t.Errorf("listeners mismatch (-want +got):\n%s", diff)
			}
			gotRoutes := map[string][]string{}
			for name, m := range res.Routes {
				var domains []string
				for _, vh := range m.(*routev3.RouteConfiguration).GetVirtualHosts() {
					domains = append(domains, vh.GetDomains()...)
				}
				gotRoutes[name] = domains
			}
			if diff := cmp.Diff(tt.wantRoutes, gotRoutes); diff != "" {
				t.Errorf("route tables mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
