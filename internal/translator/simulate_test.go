package translator

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
)

// request is one HTTP request as a route table sees it.
type request struct {
	host    string // :authority
	path    string // with an optional ?query
	method  string // GET when empty
	headers map[string]string
}

// outcome is what a route table does with a request.
type outcome struct {
	vhost  string
	route  string
	action string // "cluster C", "weighted C=W,...", "redirect ...", "direct N BODY", "404"
}

// simulate answers which virtual host, route and action Envoy picks for req
// in rc: virtual hosts by exact domain, then longest "*suffix", then
// longest "prefix*", then "*"; routes in order, first match wins.
func simulate(t *testing.T, rc *routev3.RouteConfiguration, req request) outcome {
	t.Helper()
	vh := pickVirtualHost(rc, strings.ToLower(req.host))
	if vh == nil {
		return outcome{action: "404"}
	}
	if req.method == "" {
		req.method = "GET"
	}
	path, rawQuery, _ := strings.Cut(req.path, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatalf("bad query %q: %v", rawQuery, err)
	}
	for _, r := range vh.GetRoutes() {
		if !routeMatches(t, r.GetMatch(), req, path, query) {
			continue
		}
		return outcome{vhost: vh.GetName(), route: r.GetName(), action: describeAction(r)}
	}
	return outcome{vhost: vh.GetName(), action: "404"}
}

func pickVirtualHost(rc *routev3.RouteConfiguration, host string) *routev3.VirtualHost {
	var suffix, prefix, star *routev3.VirtualHost
	suffixLen, prefixLen := -1, -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == host:
				return vh
			case d == "*":
				if star == nil {
					star = vh
				}
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(d) > suffixLen:
				suffix, suffixLen = vh, len(d)
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(d) > prefixLen:
				prefix, prefixLen = vh, len(d)
			}
		}
	}
	switch {
	case suffix != nil:
		return suffix
	case prefix != nil:
		return prefix
	default:
		return star
	}
}

func routeMatches(t *testing.T, m *routev3.RouteMatch, req request, path string, query url.Values) bool {
	caseSensitive := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	p, want := path, ""
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		want = ps.Prefix
		if !caseSensitive {
			p, want = strings.ToLower(p), strings.ToLower(want)
		}
		if !strings.HasPrefix(p, want) {
			return false
		}
	case *routev3.RouteMatch_Path:
		want = ps.Path
		if !caseSensitive {
			p, want = strings.ToLower(p), strings.ToLower(want)
		}
		if p != want {
			return false
		}
	case *routev3.RouteMatch_SafeRegex:
		if !fullMatch(t, ps.SafeRegex.GetRegex(), path) {
			return false
		}
	default:
		t.Fatalf("unsupported path specifier %T", ps)
	}
	for _, hm := range m.GetHeaders() {
		var v string
		var ok bool
		switch hm.GetName() {
		case ":method":
			v, ok = req.method, true
		case ":authority":
			v, ok = req.host, true
		default:
			v, ok = req.headers[hm.GetName()]
		}
		var matched bool
		switch {
		case hm.GetPresentMatch():
			matched = ok
		case hm.GetStringMatch() != nil:
			matched = ok && stringMatches(t, hm.GetStringMatch(), v)
		default:
			t.Fatalf("unsupported header matcher %v", hm)
		}
		if matched == hm.GetInvertMatch() {
			return false
		}
	}
	for _, qm := range m.GetQueryParameters() {
		vals, ok := query[qm.GetName()]
		switch {
		case qm.GetPresentMatch():
			if !ok {
				return false
			}
		case qm.GetStringMatch() != nil:
			if !ok || !stringMatches(t, qm.GetStringMatch(), vals[0]) {
				return false
			}
		}
	}
	return true
}

func stringMatches(t *testing.T, sm *matcherv3.StringMatcher, v string) bool {
	want := sm
	if sm.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if want.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(t, p.SafeRegex.GetRegex(), v)
	}
	t.Fatalf("unsupported string matcher %v", sm)
	return false
}

func fullMatch(t *testing.T, re, s string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		t.Fatalf("regex %q: %v", re, err)
	}
	return r.MatchString(s)
}

func describeAction(r *routev3.Route) string {
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		ra := a.Route
		var extra string
		if ra.GetPrefixRewrite() != "" {
			extra += " prefix_rewrite=" + ra.GetPrefixRewrite()
		}
		if ra.GetHostRewriteLiteral() != "" {
			extra += " host_rewrite=" + ra.GetHostRewriteLiteral()
		}
		if wc := ra.GetWeightedClusters(); wc != nil {
			var parts []string
			for _, c := range wc.GetClusters() {
				parts = append(parts, fmt.Sprintf("%s=%d", c.GetName(), c.GetWeight().GetValue()))
			}
			return "weighted " + strings.Join(parts, ",") + extra
		}
		return "cluster " + ra.GetCluster() + extra
	case *routev3.Route_Redirect:
		rd := a.Redirect
		return fmt.Sprintf("redirect %s scheme=%s host=%s port=%d path=%s", rd.GetResponseCode(), rd.GetSchemeRedirect(), rd.GetHostRedirect(),
			rd.GetPortRedirect(), rd.GetPathRedirect())
	case *routev3.Route_DirectResponse:
		return fmt.Sprintf("direct %d %s", a.DirectResponse.GetStatus(), a.DirectResponse.GetBody().GetInlineString())
	}
	return fmt.Sprintf("unknown %T", r.GetAction())
}

const simulationMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http}, {number: 8080, name: http-alt}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http}]
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example.com]
  resolution: DNS
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v1, namespace: default}
spec: {address: 127.0.1.1, labels: {app: web, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v2, namespace: default}
spec: {address: 127.0.1.2, labels: {app: web, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.1.9, labels: {app: client}}
---
# Egress binds give the client the per-port route tables the cases query,
# exactly as a real sidecar receives them.
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress:
  - {port: {number: 80, protocol: HTTP, name: http}, bind: 127.0.9.9, hosts: ["*/*"]}
  - {port: {number: 8080, protocol: HTTP, name: http-alt}, bind: 127.0.9.9, hosts: ["*/*"]}
  - {hosts: ["*/*"]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: web, subset: v1}}]
  - name: prefix-any-case
    match: [{uri: {prefix: /Prefix}, ignoreUriCase: true}]
    route: [{destination: {host: web, subset: v2}}]
  - name: regex
    match: [{uri: {regex: "/re/[0-9]+"}}]
    route: [{destination: {host: web, subset: v1}}]
  - name: headers
    match:
    - {name: hp, headers: {x-prefix: {prefix: abc}}}
    - {name: hr, headers: {x-regex: {regex: "v[0-9]"}}}
    - {name: he, headers: {X-Exact: {exact: "yes"}}}
    route: [{destination: {host: web, subset: v2}}]
  - name: without
    match: [{uri: {prefix: /without}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: method
    match: [{uri: {prefix: /method}, method: {exact: POST}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: authority
    match: [{uri: {prefix: /authority}, authority: {prefix: "web.default"}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: query
    match: [{uri: {prefix: /query}, queryParams: {debug: {exact: "1"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: other-port
    match: [{port: 8080}]
    route: [{destination: {host: api}}]
  - name: redirect
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example, redirectCode: 302}
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - name: split
    match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: web, subset: v1}, weight: 30}
    - {destination: {host: web, subset: v2}, weight: 70}
  - name: rewrite
    match: [{uri: {prefix: /rw}}]
    rewrite: {uri: /new, authority: api.internal}
    route: [{destination: {host: api}}]
  - name: fallback
    route: [{destination: {host: web, port: {number: 80}}}]
`

func TestSimulateRoutes(t *testing.T) {
	snap := snapshotOf(t, simulationMesh)
	const (
		web   = "outbound|80||web.default.svc.cluster.local"
		webV1 = "outbound|80|v1|web.default.svc.cluster.local"
		webV2 = "outbound|80|v2|web.default.svc.cluster.local"
		api   = "outbound|80||api.default.svc.cluster.local"
	)
	tests := []struct {
		name      string
		ns        string // proxy namespace; "default" when empty
		routeName string // "80" when empty
		req       request
		want      outcome
	}{
		{"uri exact", "", "", request{host: "web", path: "/exact"}, outcome{"web.default.svc.cluster.local:80", "exact", "cluster " + webV1}},
		{"uri exact is not a prefix", "", "", request{host: "web", path: "/exact/more"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"uri prefix ignoring case", "", "", request{host: "web", path: "/prefix/a"}, outcome{"web.default.svc.cluster.local:80", "prefix-any-case", "cluster " + webV2}},
		{"uri regex", "", "", request{host: "web", path: "/re/42"}, outcome{"web.default.svc.cluster.local:80", "regex", "cluster " + webV1}},
		{"uri regex is a full match", "", "", request{host: "web", path: "/re/42x"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"header prefix", "", "", request{host: "web", path: "/", headers: map[string]string{"x-prefix": "abcdef"}}, outcome{"web.default.svc.cluster.local:80", "headers.hp", "cluster " + webV2}},
		{"header regex", "", "", request{host: "web", path: "/", headers: map[string]string{"x-regex": "v7"}}, outcome{"web.default.svc.cluster.local:80", "headers.hr", "cluster " + webV2}},
		{"header exact name lower-cased", "", "", request{host: "web", path: "/", headers: map[string]string{"x-exact": "yes"}}, outcome{"web.default.svc.cluster.local:80", "headers.he", "cluster " + webV2}},
		{"header exact mismatch", "", "", request{host: "web", path: "/", headers: map[string]string{"x-exact": "no"}}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"withoutHeaders absent", "", "", request{host: "web", path: "/without"}, outcome{"web.default.svc.cluster.local:80", "without", "cluster " + webV2}},
		{"withoutHeaders present", "", "", request{host: "web", path: "/without", headers: map[string]string{"x-skip": "1"}}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"method", "", "", request{host: "web", path: "/method", method: "POST"}, outcome{"web.default.svc.cluster.local:80", "method", "cluster " + webV2}},
		{"method mismatch", "", "", request{host: "web", path: "/method"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"authority", "", "", request{host: "web.default:80", path: "/authority"}, outcome{"web.default.svc.cluster.local:80", "authority", "cluster " + webV2}},
		{"authority mismatch", "", "", request{host: "web", path: "/authority"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"query param", "", "", request{host: "web", path: "/query?debug=1"}, outcome{"web.default.svc.cluster.local:80", "query", "cluster " + webV2}},
		{"query param mismatch", "", "", request{host: "web", path: "/query?debug=0"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"redirect", "", "", request{host: "web", path: "/old"}, outcome{"web.default.svc.cluster.local:80", "redirect", "redirect FOUND scheme= host=new.example port=0 path=/new"}},
		{"direct response", "", "", request{host: "web", path: "/teapot"}, outcome{"web.default.svc.cluster.local:80", "teapot", "direct 418 short and stout"}},
		{"weights and subsets", "", "", request{host: "web", path: "/split/x"}, outcome{"web.default.svc.cluster.local:80", "split", "weighted " + webV1 + "=30," + webV2 + "=70"}},
		{"rewrite; service with one port", "", "", request{host: "web", path: "/rw"}, outcome{"web.default.svc.cluster.local:80", "rewrite", "cluster " + api + " prefix_rewrite=/new host_rewrite=api.internal"}},
		{"port match applies on its port", "", "8080", request{host: "web:8080", path: "/"}, outcome{"web.default.svc.cluster.local:8080", "other-port", "cluster " + api}},
		{"fqdn with port", "", "", request{host: "web.default.svc.cluster.local:80", path: "/x"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"short name in own namespace", "", "", request{host: "web:80", path: "/x"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"name.namespace", "", "", request{host: "api.default", path: "/"}, outcome{"api.default.svc.cluster.local:80", "default", "cluster " + api}},
		{"name.namespace.svc", "", "", request{host: "api.default.svc:80", path: "/"}, outcome{"api.default.svc.cluster.local:80", "default", "cluster " + api}},
		{"short name from another namespace", "other", "", request{host: "web", path: "/x"}, outcome{"allow_any", "allow_any", "cluster PassthroughCluster"}},
		{"name.namespace from another namespace", "other", "", request{host: "web.default", path: "/x"}, outcome{"web.default.svc.cluster.local:80", "fallback", "cluster " + web}},
		{"external host", "", "", request{host: "ext.example.com", path: "/"}, outcome{"ext.example.com:80", "default", "cluster outbound|80||ext.example.com"}},
		{"unknown host: ALLOW_ANY", "", "", request{host: "nope", path: "/"}, outcome{"allow_any", "allow_any", "cluster PassthroughCluster"}},
		{"http_proxy: port in host", "", "http_proxy", request{host: "web:8080", path: "/"}, outcome{"web.default.svc.cluster.local:8080", "other-port", "cluster " + api}},
		{"http_proxy: bare name is port 80", "", "http_proxy", request{host: "web", path: "/exact"}, outcome{"web.default.svc.cluster.local:80", "exact", "cluster " + webV1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.ns
			if ns == "" {
				ns = "default"
			}
			res := Translate(snap, Proxy{Type: Sidecar, Namespace: ns, Name: "client"})
			validateAll(t, res)
			name := tt.routeName
			if name == "" {
				name = "80"
			}
			rc, ok := res.Routes[name].(*routev3.RouteConfiguration)
			if !ok {
				t.Fatalf("no route table %q; have %v", name, sortedKeys(res.Routes))
			}
			got := simulate(t, rc, tt.req)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(outcome{})); diff != "" {
				t.Errorf("simulate(%+v) mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}

func TestSimulateBookinfo(t *testing.T) {
	snap := bookinfo(t)
	const (
		productpage = "outbound|9080||productpage.default.svc.cluster.local"
		reviewsV1   = "outbound|9080|v1|reviews.default.svc.cluster.local"
		reviewsV2   = "outbound|9080|v2|reviews.default.svc.cluster.local"
		reviewsV3   = "outbound|9080|v3|reviews.default.svc.cluster.local"
		details     = "outbound|9080||details.default.svc.cluster.local"
	)
	gateway := Proxy{Type: Router, Namespace: "istio-system", Name: "istio-ingressgateway"}
	productpageSidecar := Proxy{Type: Sidecar, Namespace: "default", Name: "productpage-v1"}
	grpcClient := Proxy{Type: Proxyless, Namespace: "default"}
	tests := []struct {
		name      string
		proxy     Proxy
		routeName string
		req       request
		want      outcome
	}{
		{"gateway: any host, exact /productpage", gateway, "http.8080", request{host: "bookinfo.example:8080", path: "/productpage"},
			outcome{"*:8080", "", "cluster " + productpage}},
		{"gateway: prefix /static", gateway, "http.8080", request{host: "localhost", path: "/static/css"}, outcome{"*:8080", "", "cluster " + productpage}},
		{"gateway: unrouted path", gateway, "http.8080", request{host: "localhost", path: "/admin"}, outcome{"*:8080", "", "404"}},
		{"sidecar egress: jason sees v2", productpageSidecar, "127.0.30.1_9080", request{host: "reviews:9080", path: "/reviews/0", headers: map[string]string{"end-user": "jason"}},
			outcome{"reviews.default.svc.cluster.local:9080", "jason", "cluster " + reviewsV2}},
		{"sidecar egress: others split v1/v3", productpageSidecar, "127.0.30.1_9080", request{host: "reviews:9080", path: "/reviews/0"},
			outcome{"reviews.default.svc.cluster.local:9080", "split", "weighted " + reviewsV1 + "=50," + reviewsV3 + "=50"}},
		{"sidecar egress: restricted to its hosts (ALLOW_ANY passes the rest through)", productpageSidecar, "127.0.30.1_9080", request{host: "ratings:9080", path: "/"},
			outcome{"allow_any", "allow_any", "cluster PassthroughCluster"}},
		{"sidecar egress: details", productpageSidecar, "127.0.30.1_9080", request{host: "details:9080", path: "/details/0"},
			outcome{"details.default.svc.cluster.local:9080", "default", "cluster " + details}},
		{"http_proxy: VIP", productpageSidecar, "http_proxy", request{host: "240.240.0.3:9080", path: "/"},
			outcome{"reviews.default.svc.cluster.local:9080", "split", "weighted " + reviewsV1 + "=50," + reviewsV3 + "=50"}},
		{"http_proxy: external DNS service", productpageSidecar, "http_proxy", request{host: "httpbin.org", path: "/get"},
			outcome{"httpbin.org:80", "default", "cluster outbound|80||httpbin.org"}},
		{"proxyless: target authority", grpcClient, "reviews.default.svc.cluster.local:9080", request{host: "reviews.default.svc.cluster.local:9080", path: "/pkg.Svc/Get", headers: map[string]string{"end-user": "jason"}},
			outcome{"reviews.default.svc.cluster.local:9080", "jason", "cluster " + reviewsV2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(snap, tt.proxy)
			rc, ok := res.Routes[tt.routeName].(*routev3.RouteConfiguration)
			if !ok {
				t.Fatalf("no route table %q; have %v", tt.routeName, sortedKeys(res.Routes))
			}
			if diff := cmp.Diff(tt.want, simulate(t, rc, tt.req), cmp.AllowUnexported(outcome{})); diff != "" {
				t.Errorf("simulate(%+v) mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}
