package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Ports of the gateway proxy: the Gateway API listener and the Istio
// Gateway server carrying the same intent.
const (
	gwPortGatewayAPI = 18080
	gwPortIstio      = 18081
	hostGateway      = 30
)

// gatewayAPIYAML is the intent "/v2 and below go to echo v2 with the prefix
// stripped and x-route set; /legacy and below go to echo v1 as /home;
// everything else goes to echo v1", written once
// with the Kubernetes Gateway API and once with Istio's API, on one gateway
// workload that both select.
func gatewayAPIYAML(gwIP string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: default}
spec:
  address: %[1]s
  labels: {gateway.networking.k8s.io/gateway-name: web, istio: ingressgateway}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo-v1, namespace: default}
spec:
  hosts: [echo-v1.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %[2]d, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo-v2, namespace: default}
spec:
  hosts: [echo-v2.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %[2]d, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: echo, version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: %[3]d, protocol: HTTP, hostname: '*.example.com'}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [echo.example.com]
  rules:
  - backendRefs: [{name: echo-v1, port: %[2]d}]
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-route, value: v2}]}}
    backendRefs: [{name: echo-v2, port: %[2]d}]
  - matches: [{path: {type: PathPrefix, value: /legacy}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /home}}}
    backendRefs: [{name: echo-v1, port: %[2]d}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-istio, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: %[4]d, name: http-istio, protocol: HTTP}, hosts: ['*.example.com']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-istio, namespace: default}
spec:
  hosts: [echo.example.com]
  gateways: [web-istio]
  http:
  - match: [{uri: {exact: /v2}}]
    rewrite: {uri: /}
    headers: {request: {set: {x-route: v2}}}
    route: [{destination: {host: echo-v2.default.svc.cluster.local, port: {number: %[2]d}}}]
  - match: [{uri: {prefix: /v2/}}]
    rewrite: {uri: /}
    headers: {request: {set: {x-route: v2}}}
    route: [{destination: {host: echo-v2.default.svc.cluster.local, port: {number: %[2]d}}}]
  - match: [{uri: {exact: /legacy}}, {uri: {prefix: /legacy/}}]
    rewrite: {uriRegexRewrite: {match: /.*, rewrite: /home}}
    route: [{destination: {host: echo-v1.default.svc.cluster.local, port: {number: %[2]d}}}]
  - route: [{destination: {host: echo-v1.default.svc.cluster.local, port: {number: %[2]d}}}]
`, gwIP, portHTTP, gwPortGatewayAPI, gwPortIstio)
}

// TestGatewayAPIRoutesLikeIstio sends the same requests through a real
// gateway proxy to an HTTPRoute and to the VirtualService with the same
// intent, and checks both answer alike and as intended.
func TestGatewayAPIRoutesLikeIstio(t *testing.T) {
	m := startMesh(t, meshOptions{})
	gwIP := m.bl.ip(hostGateway)
	writeFile(t, m.dir, "gatewayapi.yaml", gatewayAPIYAML(gwIP))
	p := startProc(t, "proxy gw", "trellis-proxy", "--xds", m.xdsAddr, "--workload", "default/gw", "--address", gwIP, "--gateway")
	m.proxies["gw"] = p
	waitFor(t, "gateway proxy ready", readyTimeout, ready("http://"+gwIP+":15021/healthz/ready"), p, m.trellisd)

	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	get := func(port int, path string) (echoReply, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, fmt.Sprintf("http://%s:%d%s", gwIP, port, path), nil)
		if err != nil {
			return echoReply{}, err
		}
		req.Host = "echo.example.com"
		return doEcho(c, req)
	}
	// Both listeners serve once trellisd has converted and pushed the config.
	for _, port := range []int{gwPortGatewayAPI, gwPortIstio} {
		waitFor(t, fmt.Sprintf("gateway port %d routes", port), readyTimeout, func() error {
			_, err := get(port, "/v2/ready")
			return err
		}, m.all()...)
	}
	cases := []struct {
		path, wantName, wantPath, wantRoute string
	}{
		// Needs the proxy to apply prefix_rewrite to an exact path match, as
		// Envoy does ("the matched prefix (or path)").
		{"/v2", "echo-v2", "/", "v2"},
		{"/v2/reviews/1", "echo-v2", "/reviews/1", "v2"},
		{"/v2x", "echo-v1", "/v2x", ""},
		{"/", "echo-v1", "/", ""},
		{"/other/v2", "echo-v1", "/other/v2", ""},
		// ReplaceFullPath becomes regex_rewrite "/.*" → "/home".
		{"/legacy", "echo-v1", "/home", ""},
		{"/legacy/a/b?x=1", "echo-v1", "/home", ""},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			for _, port := range []int{gwPortGatewayAPI, gwPortIstio} {
				for range 3 { // both echo workloads could answer if routing were wrong
					r, err := get(port, tc.path)
					if err != nil {
						t.Fatalf("port %d: %v", port, err)
					}
					route := strings.Join(r.Headers["X-Route"], ",")
					if r.Name != tc.wantName || r.Path != tc.wantPath || route != tc.wantRoute {
						t.Fatalf("port %d GET %s: answered by %s path %s x-route %q, want %s path %s x-route %q",
							port, tc.path, r.Name, r.Path, route, tc.wantName, tc.wantPath, tc.wantRoute)
					}
				}
			}
		})
	}
	// A host no listener serves answers 404 on both.
	for _, port := range []int{gwPortGatewayAPI, gwPortIstio} {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/", gwIP, port), nil)
		req.Host = "nobody.example.org"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("port %d unknown host: status %d, want 404", port, resp.StatusCode)
		}
	}
}

// doEcho sends req and decodes the echo reply; any status but 200 is an error.
func doEcho(c *http.Client, req *http.Request) (echoReply, error) {
	var r echoReply
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}
