package translator

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
)

// trafficMesh exercises issue 3's HTTP, TCP and TLS routing: a client in
// default with egress listeners on 80 (HTTP), 3306 (TCP) and 443 (TLS).
const trafficMesh = `
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
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [shadow.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  workloadSelector: {labels: {app: shadow}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 3306, name: tcp-db}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-replica, namespace: default}
spec:
  hosts: [db-replica.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 3306, name: tcp-db}]
  workloadSelector: {labels: {app: db-replica}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [a.secure.example, b.secure.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.1.9, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - {port: {number: 80, protocol: HTTP, name: http}, bind: 127.0.9.9, hosts: ["./*"]}
  - {port: {number: 3306, protocol: TCP, name: tcp}, bind: 127.0.9.9, hosts: ["./*"]}
  - {port: {number: 443, protocol: TLS, name: tls}, bind: 127.0.9.9, hosts: ["./*"]}
  - {hosts: ["./*"]}
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
  - name: mirrored
    match: [{uri: {prefix: /mirror}}]
    route: [{destination: {host: web, subset: v1}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 12.5}
  - name: mirrors
    match: [{uri: {prefix: /mirrors}}]
    route: [{destination: {host: web, subset: v1}}]
    mirrors:
    - {destination: {host: shadow}}
    - {destination: {host: web, subset: v2}, percentage: {value: 0}}
  - name: faulty
    match: [{uri: {prefix: /fault}}]
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 0.5}}
    route: [{destination: {host: web}}]
  - name: grpc-fault
    match: [{uri: {prefix: /grpc.Svc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE}}
    route: [{destination: {host: web}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*\\.b\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-b]
      exposeHeaders: [x-c]
      maxAge: 86400s
      allowCredentials: true
    route: [{destination: {host: web}}]
  - name: retries
    match: [{uri: {prefix: /retry}}]
    retries:
      attempts: 4
      perTryTimeout: 0.25s
      retryOn: "5xx,gateway-error,connect-failure,refused-stream,reset,retriable-4xx,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,409"
      retryRemoteLocalities: true
      backoff: 0.04s
    timeout: 3s
    route: [{destination: {host: web}}]
  - name: no-retries
    match: [{uri: {prefix: /once}}]
    retries: {attempts: 0}
    route: [{destination: {host: web}}]
  - name: regex-rewrite
    match: [{uri: {prefix: /rx}}]
    rewrite: {uriRegexRewrite: {match: "^/rx/(.*)$", rewrite: "/new/\\1"}}
    route: [{destination: {host: web}}]
  - name: redirect-derive
    match: [{uri: {prefix: /derive}}]
    redirect: {uri: /elsewhere, authority: other.example, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 308}
  - name: redirect-port
    match: [{uri: {prefix: /port}}]
    redirect: {authority: other.example, port: 8443}
  - name: headers
    match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-set: a}, add: {x-add: b}, remove: [x-drop]}
      response: {set: {x-resp: c}, remove: [server]}
    route: [{destination: {host: web}}]
  - name: api
    match: [{uri: {prefix: /api}}]
    delegate: {name: web-api}
  - name: everything
    route: [{destination: {host: web}}]
  - name: unreachable
    route: [{destination: {host: shadow}}]
---
# A delegate: no hosts; its rules merge under /api.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-api, namespace: default}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /api/v2}, headers: {x-user: {exact: beta}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: outside
    match: [{uri: {prefix: /other}}]
    route: [{destination: {host: shadow}}]
  - name: rest
    route: [{destination: {host: web, subset: v1}}]
    timeout: 1s
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 3306, destinationSubnets: [127.0.9.0/24]}]
    route:
    - {destination: {host: db}, weight: 80}
    - {destination: {host: db-replica}, weight: 20}
  - route: [{destination: {host: db-replica}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: [a.secure.example]
  tls:
  - match: [{port: 443, sniHosts: [a.secure.example]}]
    route: [{destination: {host: b.secure.example}}]
`

func mustRoutes(t *testing.T, res *Resources, name string) *routev3.RouteConfiguration {
	t.Helper()
	rc, ok := res.Routes[name].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("no route table %q; have %v", name, sortedKeys(res.Routes))
	}
	return rc
}

// findRoute returns the route named name of the virtual host that serves
// host in rc.
func findRoute(t *testing.T, rc *routev3.RouteConfiguration, host, name string) *routev3.Route {
	t.Helper()
	vh := pickVirtualHost(rc, host)
	for _, r := range vh.GetRoutes() {
		if r.GetName() == name {
			return r
		}
	}
	t.Fatalf("no route %q for host %q", name, host)
	return nil
}

func TestSimulateTrafficRoutes(t *testing.T) {
	res := Translate(snapshotOf(t, trafficMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	validateAll(t, res)
	rc := mustRoutes(t, res, "80")
	const (
		web    = "outbound|80||web.default.svc.cluster.local"
		webV1  = "outbound|80|v1|web.default.svc.cluster.local"
		webV2  = "outbound|80|v2|web.default.svc.cluster.local"
		shadow = "outbound|80||shadow.default.svc.cluster.local"
		vhost  = "web.default.svc.cluster.local:80"
	)
	tests := []struct {
		name string
		req  request
		want outcome
	}{
		{"mirror goes to the primary", request{host: "web", path: "/mirror"}, outcome{vhost, "mirrored", "cluster " + webV1}},
		{"fault route", request{host: "web", path: "/fault"}, outcome{vhost, "faulty", "cluster " + web}},
		{"delegate rule merged under the root prefix", request{host: "web", path: "/api/v2/x", headers: map[string]string{"x-user": "beta"}},
			outcome{vhost, "api-v2", "cluster " + webV2}},
		{"delegate rule: header missing falls to the delegate's catch-all", request{host: "web", path: "/api/v2/x"},
			outcome{vhost, "api-rest", "cluster " + webV1}},
		{"delegate rule outside the root prefix is dropped", request{host: "web", path: "/other"}, outcome{vhost, "everything", "cluster " + web}},
		{"regex rewrite", request{host: "web", path: "/rx/a"}, outcome{vhost, "regex-rewrite", "cluster " + web}},
		{"redirect with derived port", request{host: "web", path: "/derive"}, outcome{vhost, "redirect-derive",
			"redirect PERMANENT_REDIRECT scheme=https host=other.example port=80 path=/elsewhere"}},
		{"nothing after a catch-all", request{host: "web", path: "/zzz"}, outcome{vhost, "everything", "cluster " + web}},
		{"ALLOW_ANY: unknown host passes through", request{host: "nope.example", path: "/"}, outcome{"allow_any", "allow_any", "cluster PassthroughCluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, simulate(t, rc, tt.req), cmp.AllowUnexported(outcome{})); diff != "" {
				t.Errorf("simulate(%+v) mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
	if n := len(pickVirtualHost(rc, "web").GetRoutes()); pickVirtualHost(rc, "web").GetRoutes()[n-1].GetName() != "everything" {
		t.Errorf("last route is %q, want the catch-all \"everything\"", pickVirtualHost(rc, "web").GetRoutes()[n-1].GetName())
	}
}

func TestRouteFields(t *testing.T) {
	res := Translate(snapshotOf(t, trafficMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	rc := mustRoutes(t, res, "80")
	frac := func(n uint32, d typev3.FractionalPercent_DenominatorType) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: d}}
	}
	tests := []struct {
		route string
		get   func(*routev3.Route) proto.Message
		want  proto.Message
	}{
		{"mirrored", func(r *routev3.Route) proto.Message { return r.GetRoute() }, &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80|v1|web.default.svc.cluster.local"},
			Timeout:          durationpb.New(0),
			RetryPolicy:      defaultRetryPolicy(),
			RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{
				Cluster: "outbound|80||shadow.default.svc.cluster.local", RuntimeFraction: frac(125000, typev3.FractionalPercent_MILLION),
				TraceSampled: wrapperspb.Bool(false),
			}},
		}},
		{"mirrors", func(r *routev3.Route) proto.Message { return r.GetRoute() }, &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80|v1|web.default.svc.cluster.local"},
			Timeout:          durationpb.New(0),
			RetryPolicy:      defaultRetryPolicy(),
			RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{
				Cluster: "outbound|80||shadow.default.svc.cluster.local", RuntimeFraction: frac(100, typev3.FractionalPercent_HUNDRED),
				TraceSampled: wrapperspb.Bool(false),
			}},
		}},
		{"faulty", func(r *routev3.Route) proto.Message {
			return unpack(t, r.GetTypedPerFilterConfig()[nameFault], &faultv3.HTTPFault{})
		}, &faultv3.HTTPFault{
			Delay: &faultcommonv3.FaultDelay{
				FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2e9)},
				Percentage:         &typev3.FractionalPercent{Numerator: 500000, Denominator: typev3.FractionalPercent_MILLION},
			},
			Abort: &faultv3.FaultAbort{
				ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
				Percentage: &typev3.FractionalPercent{Numerator: 5000, Denominator: typev3.FractionalPercent_MILLION},
			},
		}},
		{"grpc-fault", func(r *routev3.Route) proto.Message {
			return unpack(t, r.GetTypedPerFilterConfig()[nameFault], &faultv3.HTTPFault{})
		}, &faultv3.HTTPFault{
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}},
		}},
		{"cors", func(r *routev3.Route) proto.Message {
			return unpack(t, r.GetTypedPerFilterConfig()[nameCORS], &corsv3.CorsPolicy{})
		}, &corsv3.CorsPolicy{
			AllowOriginStringMatch: []*matcherv3.StringMatcher{
				{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}},
				{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://.*\.b\.example`}}},
			},
			AllowMethods: "GET,POST", AllowHeaders: "x-a,x-b", ExposeHeaders: "x-c", MaxAge: "86400",
			AllowCredentials:             wrapperspb.Bool(true),
			FilterEnabled:                frac(100, typev3.FractionalPercent_HUNDRED),
			ForwardNotMatchingPreflights: wrapperspb.Bool(true),
		}},
		{"retries", func(r *routev3.Route) proto.Message { return r.GetRoute() }, &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80||web.default.svc.cluster.local"},
			Timeout:          durationpb.New(3e9),
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:              "5xx,gateway-error,connect-failure,refused-stream,reset,retriable-4xx,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,retriable-status-codes",
				NumRetries:           wrapperspb.UInt32(4),
				PerTryTimeout:        durationpb.New(250e6),
				RetriableStatusCodes: []uint32{409},
				RetryPriority:        previousPriorities(),
				RetryBackOff:         &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(40e6)},
			},
		}},
		{"no-retries", func(r *routev3.Route) proto.Message { return r.GetRoute() }, &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80||web.default.svc.cluster.local"},
			Timeout:          durationpb.New(0),
		}},
		{"regex-rewrite", func(r *routev3.Route) proto.Message { return r.GetRoute().GetRegexRewrite() }, &matcherv3.RegexMatchAndSubstitute{
			Pattern: &matcherv3.RegexMatcher{Regex: "^/rx/(.*)$"}, Substitution: `/new/\1`,
		}},
		{"redirect-port", func(r *routev3.Route) proto.Message { return r.GetRedirect() }, &routev3.RedirectAction{
			HostRedirect: "other.example", PortRedirect: 8443,
		}},
		{"headers", func(r *routev3.Route) proto.Message {
			return &routev3.Route{RequestHeadersToAdd: r.GetRequestHeadersToAdd(), RequestHeadersToRemove: r.GetRequestHeadersToRemove(),
				ResponseHeadersToAdd: r.GetResponseHeadersToAdd(), ResponseHeadersToRemove: r.GetResponseHeadersToRemove()}
		}, &routev3.Route{
			RequestHeadersToAdd: []*corev3.HeaderValueOption{
				{Header: &corev3.HeaderValue{Key: "x-set", Value: "a"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
				{Header: &corev3.HeaderValue{Key: "x-add", Value: "b"}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD},
			},
			RequestHeadersToRemove: []string{"x-drop"},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{
				{Header: &corev3.HeaderValue{Key: "x-resp", Value: "c"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
			},
			ResponseHeadersToRemove: []string{"server"},
		}},
		{"api-rest", func(r *routev3.Route) proto.Message { return r.GetRoute().GetTimeout() }, durationpb.New(1e9)},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			got := tt.get(findRoute(t, rc, "web", tt.route))
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("route %q mismatch (-want +got):\n%s", tt.route, diff)
			}
		})
	}
}

func unpack[M proto.Message](t *testing.T, a interface{ GetTypeUrl() string }, m M) proto.Message {
	t.Helper()
	any, ok := a.(interface {
		GetTypeUrl() string
		GetValue() []byte
	})
	if !ok || any.GetTypeUrl() == "" {
		t.Fatalf("no typed config")
	}
	if err := proto.Unmarshal(any.GetValue(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// hcmOf decodes the http_connection_manager of a listener's only chain.
func hcmOf(t *testing.T, l *listenerv3.Listener, chain int) *hcmv3.HttpConnectionManager {
	t.Helper()
	f := l.GetFilterChains()[chain].GetFilters()[0]
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatalf("%s: %v", l.GetName(), err)
	}
	return h
}

func filterNames(h *hcmv3.HttpConnectionManager) []string {
	var out []string
	for _, f := range h.GetHttpFilters() {
		out = append(out, f.GetName())
	}
	return out
}

func TestRouteFiltersInHCM(t *testing.T) {
	res := Translate(snapshotOf(t, trafficMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	for _, name := range []string{"127.0.9.9_80", httpProxyName} {
		l := res.Listeners[name].(*listenerv3.Listener)
		want := []string{nameFault, nameCORS, nameRouter}
		if got := filterNames(hcmOf(t, l, 0)); !slices.Equal(got, want) {
			t.Errorf("%s: http_filters %v, want %v", name, got, want)
		}
	}
	// A mesh without fault or CORS keeps the router alone.
	plain := Translate(snapshotOf(t, simulationMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	if got := filterNames(hcmOf(t, plain.Listeners["127.0.9.9_80"].(*listenerv3.Listener), 0)); !slices.Equal(got, []string{nameRouter}) {
		t.Errorf("http_filters %v, want only the router", got)
	}
}

// pickChain answers which filter chain Envoy picks for a connection to dst
// with SNI sni: destination prefix (longest), then server_names (exact,
// then longest wildcard, then none).
func pickChain(t *testing.T, l *listenerv3.Listener, dst, sni string) *listenerv3.FilterChain {
	t.Helper()
	ip := netip.MustParseAddr(dst)
	best, bestLen := []*listenerv3.FilterChain(nil), -1
	for _, fc := range l.GetFilterChains() {
		n := 0
		if rs := fc.GetFilterChainMatch().GetPrefixRanges(); len(rs) > 0 {
			n = -1
			for _, r := range rs {
				p := netip.PrefixFrom(netip.MustParseAddr(r.GetAddressPrefix()), int(r.GetPrefixLen().GetValue()))
				if p.Contains(ip) && p.Bits()+1 > n {
					n = p.Bits() + 1
				}
			}
			if n < 0 {
				continue
			}
		}
		switch {
		case n > bestLen:
			best, bestLen = []*listenerv3.FilterChain{fc}, n
		case n == bestLen:
			best = append(best, fc)
		}
	}
	var exact, wild, none *listenerv3.FilterChain
	wildLen := -1
	for _, fc := range best {
		names := fc.GetFilterChainMatch().GetServerNames()
		if len(names) == 0 {
			none = fc
		}
		for _, n := range names {
			switch {
			case n == sni:
				exact = fc
			case strings.HasPrefix(n, "*") && strings.HasSuffix(sni, n[1:]) && len(n) > wildLen:
				wild, wildLen = fc, len(n)
			}
		}
	}
	switch {
	case exact != nil:
		return exact
	case wild != nil:
		return wild
	}
	return none
}

// describeTCP names where a tcp_proxy chain sends a connection.
func describeTCP(t *testing.T, fc *listenerv3.FilterChain) string {
	t.Helper()
	if fc == nil {
		return "closed"
	}
	tp := &tcpv3.TcpProxy{}
	if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	if wc := tp.GetWeightedClusters(); wc != nil {
		var parts []string
		for _, c := range wc.GetClusters() {
			parts = append(parts, c.GetName()+"="+portString(c.GetWeight()))
		}
		return "weighted " + strings.Join(parts, ",")
	}
	return "cluster " + tp.GetCluster()
}

func TestSimulateTCPAndTLSRoutes(t *testing.T) {
	res := Translate(snapshotOf(t, trafficMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	validateAll(t, res)
	tests := []struct {
		name, listener, dst, sni, want string
	}{
		{"tcp: destination subnet match splits by weight", "127.0.9.9_3306", "127.0.9.9", "",
			"weighted outbound|3306||db.default.svc.cluster.local=80,outbound|3306||db-replica.default.svc.cluster.local=20"},
		{"tcp: outside the subnet takes the default rule", "127.0.9.9_3306", "10.1.2.3", "", "cluster outbound|3306||db-replica.default.svc.cluster.local"},
		{"tls: sni routed by the tls route", "127.0.9.9_443", "127.0.9.9", "a.secure.example", "cluster outbound|443||b.secure.example"},
		{"tls: service without tls routes matches its own name", "127.0.9.9_443", "127.0.9.9", "b.secure.example", "cluster outbound|443||b.secure.example"},
		{"tls: unknown sni passes through (ALLOW_ANY)", "127.0.9.9_443", "127.0.9.9", "other.example", "cluster PassthroughCluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := res.Listeners[tt.listener].(*listenerv3.Listener)
			if !ok {
				t.Fatalf("no listener %q; have %v", tt.listener, sortedKeys(res.Listeners))
			}
			if got := describeTCP(t, pickChain(t, l, tt.dst, tt.sni)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if l := res.Listeners["127.0.9.9_443"].(*listenerv3.Listener); len(l.GetListenerFilters()) != 1 || l.GetListenerFilters()[0].GetName() != nameSNIInspector {
		t.Errorf("TLS listener filters %v, want tls_inspector", l.GetListenerFilters())
	}
}

const registryOnlyMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: other}
spec:
  hosts: [api.other.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.1.9, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress:
  - {port: {number: 80, protocol: HTTP, name: http}, bind: 127.0.9.9, hosts: ["./*"]}
  - {port: {number: 5432, protocol: TCP, name: tcp}, bind: 127.0.9.9, hosts: ["./*"]}
  - {hosts: ["./*"]}
`

func TestRegistryOnly(t *testing.T) {
	res := Translate(snapshotOf(t, registryOnlyMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	validateAll(t, res)
	for _, name := range []string{"80", httpProxyName} {
		rc := mustRoutes(t, res, name)
		want := outcome{blockAllName, blockAllName, "direct 502 "}
		if diff := cmp.Diff(want, simulate(t, rc, request{host: "unknown.example", path: "/"}), cmp.AllowUnexported(outcome{})); diff != "" {
			t.Errorf("%s: unknown host (-want +got):\n%s", name, diff)
		}
		// Egress hosts "./*" scope the proxy to its namespace: a service in
		// another namespace is as unknown as one outside the mesh.
		if diff := cmp.Diff(want, simulate(t, rc, request{host: "api.other", path: "/"}), cmp.AllowUnexported(outcome{})); diff != "" {
			t.Errorf("%s: out-of-scope host (-want +got):\n%s", name, diff)
		}
	}
	if got := describeTCP(t, pickChain(t, res.Listeners["127.0.9.9_5432"].(*listenerv3.Listener), "127.0.9.9", "")); got != "cluster "+blackHoleCluster {
		t.Errorf("unknown TCP goes to %s, want BlackHoleCluster", got)
	}
	if _, ok := res.Clusters[passthroughCluster]; ok {
		t.Error("REGISTRY_ONLY proxy has a PassthroughCluster")
	}
	for name := range res.Clusters {
		if strings.Contains(name, "api.other") {
			t.Errorf("cluster %s is outside the Sidecar's egress scope", name)
		}
	}
}

const externalMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: default}
spec:
  hosts: [strict.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: logical, namespace: default}
spec:
  hosts: [logical.example.com]
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [static.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}, {address: 192.0.2.11}]
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: default}
spec:
  hosts: [none.example.com]
  addresses: [198.51.100.0/24]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 9000, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.1.9, labels: {app: client}}
`

func TestExternalClusters(t *testing.T) {
	res := Translate(snapshotOf(t, externalMesh), Proxy{Type: Sidecar, Namespace: "default", Name: "client"})
	validateAll(t, res)
	tests := []struct {
		cluster string
		typ     clusterv3.Cluster_DiscoveryType
		lb      clusterv3.Cluster_LbPolicy
		eps     int // inline endpoints; -1 for EDS
	}{
		{"outbound|443||strict.example.com", clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_ROUND_ROBIN, 1},
		{"outbound|80||logical.example.com", clusterv3.Cluster_LOGICAL_DNS, clusterv3.Cluster_ROUND_ROBIN, 1},
		{"outbound|80||static.example.com", clusterv3.Cluster_EDS, clusterv3.Cluster_ROUND_ROBIN, -1},
		{"outbound|9000||none.example.com", clusterv3.Cluster_ORIGINAL_DST, clusterv3.Cluster_CLUSTER_PROVIDED, 0},
		{passthroughCluster, clusterv3.Cluster_ORIGINAL_DST, clusterv3.Cluster_CLUSTER_PROVIDED, 0},
	}
	for _, tt := range tests {
		t.Run(tt.cluster, func(t *testing.T) {
			c, ok := res.Clusters[tt.cluster].(*clusterv3.Cluster)
			if !ok {
				t.Fatalf("no cluster; have %v", sortedKeys(res.Clusters))
			}
			if c.GetType() != tt.typ || c.GetLbPolicy() != tt.lb {
				t.Errorf("type %v lb %v, want %v %v", c.GetType(), c.GetLbPolicy(), tt.typ, tt.lb)
			}
			n := 0
			for _, l := range c.GetLoadAssignment().GetEndpoints() {
				n += len(l.GetLbEndpoints())
			}
			_, eds := res.Endpoints[tt.cluster]
			switch {
			case tt.eps < 0 && !eds:
				t.Error("no ClusterLoadAssignment for an EDS cluster")
			case tt.eps >= 0 && n != tt.eps:
				t.Errorf("%d inline endpoints, want %d", n, tt.eps)
			}
		})
	}
}

const gatewayMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 5432, name: tcp}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend-tls, namespace: default}
spec:
  hosts: [tls.internal.example]
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
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
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*/www.example.com"]
    tls: {mode: SIMPLE, credentialName: www-cert}
  - port: {number: 8443, name: https-admin, protocol: HTTPS}
    hosts: ["*/admin.example.com"]
    tls: {mode: MUTUAL, serverCertificate: /etc/certs/admin.crt, privateKey: /etc/certs/admin.key, caCertificates: /etc/certs/ca.crt, subjectAltNames: [client.example.com]}
  - port: {number: 9443, name: tls-pass, protocol: TLS}
    hosts: ["*/tls.internal.example"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 5432, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: www, namespace: default}
spec:
  hosts: [www.example.com, admin.example.com]
  gateways: [istio-system/gw]
  http:
  - name: old
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, derivePort: FROM_REQUEST_PORT}
  - name: all
    route: [{destination: {host: web}}]
    corsPolicy: {allowOrigins: [{exact: "https://www.example.com"}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: default}
spec:
  hosts: [tls.internal.example]
  gateways: [istio-system/gw]
  tls:
  - match: [{sniHosts: [tls.internal.example]}]
    route: [{destination: {host: tls.internal.example, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  tcp:
  - match: [{port: 5432}]
    route: [{destination: {host: db}}]
`

func TestGatewayServers(t *testing.T) {
	snap := snapshotOf(t, gatewayMesh)
	snap.Mesh.CredentialsDir = "/etc/trellis/credentials"
	res := Translate(snap, Proxy{Type: Router, Namespace: "istio-system", Name: "ingress"})
	validateAll(t, res)

	t.Run("http server with httpsRedirect", func(t *testing.T) {
		vh := pickVirtualHost(mustRoutes(t, res, "http.8080"), "www.example.com")
		if vh.GetRequireTls() != routev3.VirtualHost_ALL {
			t.Errorf("require_tls %v, want ALL", vh.GetRequireTls())
		}
	})
	t.Run("https SIMPLE: SNI chain, file-cert secret from credentialName", func(t *testing.T) {
		l := res.Listeners["127.0.5.1_8443"].(*listenerv3.Listener)
		fc := pickChain(t, l, "127.0.5.1", "www.example.com")
		ctx := downstreamCtx(t, fc)
		want := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{
				gatewaySecret("file-cert:/etc/trellis/credentials/www-cert/tls.crt~/etc/trellis/credentials/www-cert/tls.key"),
			},
		}}
		if diff := cmp.Diff(want, ctx, protocmp.Transform()); diff != "" {
			t.Errorf("tls context (-want +got):\n%s", diff)
		}
		h := hcmOf(t, &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{fc}}, 0)
		routeName := h.GetRds().GetRouteConfigName()
		if routeName != "https.8443.https.gw.istio-system" {
			t.Errorf("route table %q", routeName)
		}
		if got := filterNames(h); !slices.Equal(got, []string{nameCORS, nameRouter}) {
			t.Errorf("http_filters %v", got)
		}
		rc := mustRoutes(t, res, routeName)
		if diff := cmp.Diff(outcome{"www.example.com:8443", "old", "redirect MOVED_PERMANENTLY scheme= host= port=8443 path=/new"},
			simulate(t, rc, request{host: "www.example.com", path: "/old"}), cmp.AllowUnexported(outcome{})); diff != "" {
			t.Errorf("https route (-want +got):\n%s", diff)
		}
		if got := simulate(t, rc, request{host: "admin.example.com", path: "/"}); got.action != "404" {
			t.Errorf("admin host served by the www server's table: %+v", got)
		}
	})
	t.Run("https MUTUAL: client roots and SANs", func(t *testing.T) {
		l := res.Listeners["127.0.5.1_8443"].(*listenerv3.Listener)
		ctx := downstreamCtx(t, pickChain(t, l, "127.0.5.1", "admin.example.com"))
		if !ctx.GetRequireClientCertificate().GetValue() {
			t.Error("require_client_certificate not set")
		}
		cvc := ctx.GetCommonTlsContext().GetCombinedValidationContext()
		if got := cvc.GetValidationContextSdsSecretConfig().GetName(); got != "file-root:/etc/certs/ca.crt" {
			t.Errorf("root secret %q", got)
		}
		if got := cvc.GetDefaultValidationContext().GetMatchTypedSubjectAltNames(); len(got) != 1 || got[0].GetMatcher().GetExact() != "client.example.com" {
			t.Errorf("SAN matchers %v", got)
		}
		if got := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName(); got != "file-cert:/etc/certs/admin.crt~/etc/certs/admin.key" {
			t.Errorf("cert secret %q", got)
		}
		if l.GetListenerFilters()[0].GetName() != nameSNIInspector {
			t.Error("no tls_inspector on the HTTPS listener")
		}
	})
	t.Run("tls PASSTHROUGH: by SNI, no termination", func(t *testing.T) {
		l := res.Listeners["127.0.5.1_9443"].(*listenerv3.Listener)
		fc := pickChain(t, l, "127.0.5.1", "tls.internal.example")
		if fc.GetTransportSocket() != nil {
			t.Error("passthrough chain terminates TLS")
		}
		if got := describeTCP(t, fc); got != "cluster outbound|443||tls.internal.example" {
			t.Errorf("got %s", got)
		}
		if fc := pickChain(t, l, "127.0.5.1", "other.example"); fc != nil {
			t.Errorf("unknown SNI matched %v, want the connection closed", fc.GetFilterChainMatch())
		}
	})
	t.Run("tcp server", func(t *testing.T) {
		l := res.Listeners["127.0.5.1_5432"].(*listenerv3.Listener)
		if got := describeTCP(t, pickChain(t, l, "127.0.5.1", "")); got != "cluster outbound|5432||db.default.svc.cluster.local" {
			t.Errorf("got %s", got)
		}
	})
}

func downstreamCtx(t *testing.T, fc *listenerv3.FilterChain) *tlsv3.DownstreamTlsContext {
	t.Helper()
	if fc.GetTransportSocket() == nil {
		t.Fatal("chain has no transport socket")
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestTrafficGolden(t *testing.T) {
	tests := []struct {
		name  string
		mesh  string
		proxy Proxy
	}{
		{"traffic-sidecar", trafficMesh, Proxy{Type: Sidecar, Namespace: "default", Name: "client"}},
		{"traffic-gateway", gatewayMesh, Proxy{Type: Router, Namespace: "istio-system", Name: "ingress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshotOf(t, tt.mesh)
			snap.Mesh.CredentialsDir = "/etc/trellis/credentials"
			res := Translate(snap, tt.proxy)
			validateAll(t, res)
			got := goldenJSON(t, res)
			path := "testdata/" + tt.name + ".golden.json"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got; -update to accept):\n%s", path, diff)
			}
		})
	}
}

func TestDelegateConflicts(t *testing.T) {
	tests := []struct {
		name       string
		root, leaf string // uri prefix ("p:/a") or exact ("e:/a") or regex ("r:.*"), empty for none
		conflict   bool
	}{
		{"leaf prefix inside root prefix", "p:/api", "p:/api/v2", false},
		{"leaf prefix outside", "p:/api", "p:/other", true},
		{"leaf exact inside root prefix", "p:/api", "e:/api/x", false},
		{"root exact, leaf same exact", "e:/a", "e:/a", false},
		{"root exact, leaf prefix", "e:/a", "p:/a", true},
		{"root regex, leaf prefix", "r:/a.*", "p:/a", true},
		{"leaf regex under root prefix", "p:/a", "r:/a.*", true},
		{"no root uri", "", "p:/x", false},
		{"no leaf uri", "p:/x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stringMatchConflict(uriMatch(tt.root), uriMatch(tt.leaf)); got != tt.conflict {
				t.Errorf("conflict = %v, want %v", got, tt.conflict)
			}
		})
	}
}

// uriMatch reads "p:/a" (prefix), "e:/a" (exact) or "r:re" (regex); "" is nil.
func uriMatch(s string) *networkingv1.StringMatch {
	kind, v, _ := strings.Cut(s, ":")
	switch kind {
	case "p":
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: v}}
	case "e":
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: v}}
	case "r":
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: v}}
	}
	return nil
}
