package gatewayapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/proxy/compile"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// gatewayWorkload is the gateway proxy both APIs select: the Gateway API
// label and Istio's istio: ingressgateway.
const gatewayWorkload = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: web, istio: ingressgateway}}
spec: {address: 127.0.0.9}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, labels: {app: reviews}}
spec: {address: 127.0.0.10}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, labels: {app: ratings}}
spec: {address: 127.0.0.11}
`

// The same intent in both APIs: /v2 (and below) to ratings, login by POST
// with a header to reviews with a header added, everything else to reviews.
const intentHTTPRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bookinfo}
spec:
  parentRefs: [{name: web}]
  hostnames: [bookinfo.example.com]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: ratings, port: 9080}]
  - matches: [{path: {type: Exact, value: /login}, method: POST, headers: [{name: x-env, value: canary}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-canary, value: "1"}]}}]
    backendRefs: [{name: reviews, port: 9080}]
`

const intentVirtualService = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-istio}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*.example.com']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: [bookinfo.example.com]
  gateways: [web-istio]
  http:
  - match: [{uri: {exact: /login}, method: {exact: POST}, headers: {x-env: {exact: canary}}}]
    headers: {request: {set: {x-canary: "1"}}}
    route: [{destination: {host: reviews.default.svc.cluster.local, port: {number: 9080}}}]
  - match: [{uri: {exact: /v2}}, {uri: {prefix: /v2/}}]
    route: [{destination: {host: ratings.default.svc.cluster.local, port: {number: 9080}}}]
  - route: [{destination: {host: reviews.default.svc.cluster.local, port: {number: 9080}}}]
`

// TestSimulateGateway states, for requests through the gateway proxy, which
// cluster the HTTPRoute sends them to, and that the Istio VirtualService
// with the same intent sends them to the same place.
func TestSimulateGateway(t *testing.T) {
	cases := []struct {
		method, host, path string
		headers            map[string]string
		want               string
	}{
		{host: "bookinfo.example.com", path: "/v2", want: "outbound|9080||ratings.default.svc.cluster.local"},
		{host: "bookinfo.example.com", path: "/v2/x?y=1", want: "outbound|9080||ratings.default.svc.cluster.local"},
		{host: "bookinfo.example.com", path: "/v2x", want: "outbound|9080||reviews.default.svc.cluster.local"},
		{host: "bookinfo.example.com:8080", path: "/", want: "outbound|9080||reviews.default.svc.cluster.local"},
		{method: "POST", host: "bookinfo.example.com", path: "/login", headers: map[string]string{"x-env": "canary"},
			want: "outbound|9080||reviews.default.svc.cluster.local +x-canary=1"},
		{method: "GET", host: "bookinfo.example.com", path: "/login", headers: map[string]string{"x-env": "canary"},
			want: "outbound|9080||reviews.default.svc.cluster.local"},
		{host: "other.example.com", path: "/v2", want: "404"},
	}
	viaGatewayAPI := gatewayRoutes(t, load(t, services, gatewayWorkload, intentHTTPRoute))
	viaIstio := gatewayRoutes(t, load(t, services, gatewayWorkload, intentVirtualService))
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.host+tc.path, func(t *testing.T) {
			if got := routeOf(t, viaGatewayAPI, tc.method, tc.host, tc.path, tc.headers); got != tc.want {
				t.Errorf("HTTPRoute: got %s, want %s", got, tc.want)
			}
			if got := routeOf(t, viaIstio, tc.method, tc.host, tc.path, tc.headers); got != tc.want {
				t.Errorf("VirtualService: got %s, want %s", got, tc.want)
			}
		})
	}
}

// gatewayRoutes translates set for the gateway proxy and parses its route
// table http.8080 as trellis-proxy does.
func gatewayRoutes(t *testing.T, set *config.Set) *runtime.RouteTable {
	t.Helper()
	set, problems := Apply(set, Options{})
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	snap := &snapshot.Snapshot{Version: 1, Config: set, Registry: registry.NewServiceEntrySource().Registry(set), Mesh: snapshot.DefaultMesh()}
	res := translator.Translate(snap, translator.Proxy{ID: "router~127.0.0.9~gw.default~default.svc.cluster.local",
		Type: translator.Router, Namespace: "default", Name: "gw", Address: "127.0.0.9"})
	rc, ok := res.Routes["http.8080"].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("no route table http.8080 in %v", keys(res.Routes))
	}
	table, err := compile.ParseRouteConfiguration(rc)
	if err != nil {
		t.Fatalf("the proxy refuses the route table: %v", err)
	}
	return table
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// routeOf answers where the route table sends a request: "CLUSTER" plus
// " +NAME=VALUE" for each request header set, or "404".
func routeOf(t *testing.T, rt *runtime.RouteTable, method, host, target string, headers map[string]string) string {
	t.Helper()
	if method == "" {
		method = "GET"
	}
	path, rawQuery, _ := strings.Cut(target, "?")
	query, _ := url.ParseQuery(rawQuery)
	h := map[string]string{":method": method, ":authority": host, ":path": target}
	for k, v := range headers {
		h[k] = v
	}
	vh := pickVirtualHost(rt, host)
	if vh == nil {
		return "404"
	}
	for _, r := range vh.Routes {
		if !matches(r.Match, path, query, h) {
			continue
		}
		if r.Forward == nil || len(r.Forward.Clusters) != 1 {
			return fmt.Sprintf("non-forward route %s", r.Name)
		}
		out := r.Forward.Clusters[0].Name
		for _, s := range r.RequestHeaders.Set {
			out += fmt.Sprintf(" +%s=%s", s.Name, s.Value)
		}
		return out
	}
	return "404"
}

func pickVirtualHost(rt *runtime.RouteTable, host string) *runtime.VirtualHost {
	var best *runtime.VirtualHost
	bestScore := -1
	for _, vh := range rt.VirtualHosts {
		for _, d := range vh.Domains {
			score := -1
			switch {
			case d == host:
				score = 1000
			case strings.HasPrefix(d, "*") && d != "*" && strings.HasSuffix(host, d[1:]):
				score = 500 + len(d)
			case d == "*":
				score = 0
			}
			if score > bestScore {
				best, bestScore = vh, score
			}
		}
	}
	return best
}

func matches(m runtime.RouteMatch, path string, query url.Values, h map[string]string) bool {
	switch m.PathKind {
	case runtime.PathPrefix:
		if !strings.HasPrefix(path, m.Path) {
			return false
		}
	case runtime.PathExact:
		if path != m.Path {
			return false
		}
	case runtime.PathRegex:
		if !m.Regex.MatchString(path) {
			return false
		}
	}
	for _, hm := range m.Headers {
		v, ok := h[hm.Name]
		if stringMatches(hm.Match, v, ok) == hm.Invert {
			return false
		}
	}
	for _, qm := range m.Query {
		if !stringMatches(qm.Match, query.Get(qm.Name), query.Has(qm.Name)) {
			return false
		}
	}
	return true
}

func stringMatches(m runtime.StringMatch, v string, present bool) bool {
	if !present {
		return false
	}
	switch m.Kind {
	case runtime.MatchExact:
		return v == m.Value
	case runtime.MatchPrefix:
		return strings.HasPrefix(v, m.Value)
	case runtime.MatchRegex:
		return m.Regex.MatchString(v)
	case runtime.MatchPresent:
		return true
	}
	return false
}
