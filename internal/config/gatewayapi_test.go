package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gwDoc is specDoc for the gateway.networking.k8s.io kinds (spec starts on
// line 6).
func gwDoc(kind, spec string) string {
	return strings.Replace(specDoc(kind, spec), "networking.istio.io/v1", GatewayAPIGroup+"/v1", 1)
}

func TestParseGatewayAPIKinds(t *testing.T) {
	cases := []struct {
		name, doc string
		want      Kind
		check     func(t *testing.T, o *GatewayAPIObject)
	}{
		{name: "gateway", doc: gwDoc("Gateway", "gatewayClassName: istio\nlisteners: [{name: http, port: 80, protocol: HTTP, hostname: '*.example.com'}]"),
			want: KindKubernetesGateway, check: func(t *testing.T, o *GatewayAPIObject) {
				if got := o.Gateway.Spec.Listeners[0]; got.Port != 80 || *got.Hostname != "*.example.com" {
					t.Errorf("listener = %+v", got)
				}
			}},
		{name: "httproute", doc: gwDoc("HTTPRoute", `parentRefs: [{name: gw}]
hostnames: [a.example.com]
rules:
- matches: [{path: {type: PathPrefix, value: /v2}, headers: [{name: X-Env, value: canary}], method: GET}]
  filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}]
  backendRefs: [{name: b, port: 9080, weight: 90}, {name: c, port: 9080, weight: 10}]
  timeouts: {request: 2s}`), want: KindHTTPRoute, check: func(t *testing.T, o *GatewayAPIObject) {
			r := o.HTTPRoute.Spec.Rules[0]
			if *r.BackendRefs[0].Weight != 90 || *r.Matches[0].Path.Value != "/v2" || *r.Timeouts.Request != "2s" {
				t.Errorf("rule = %+v", r)
			}
			if got := o.Line("spec.rules[0].backendRefs[1]"); got != 11 {
				t.Errorf("Line(backendRefs[1]) = %d, want 11", got)
			}
		}},
		{name: "grpcroute", doc: gwDoc("GRPCRoute", "parentRefs: [{name: gw}]\nrules: [{matches: [{method: {service: helloworld.Greeter, method: SayHello}}], backendRefs: [{name: g, port: 50051}]}]"),
			want: KindGRPCRoute, check: func(t *testing.T, o *GatewayAPIObject) {
				if got := *o.GRPCRoute.Spec.Rules[0].Matches[0].Method.Method; got != "SayHello" {
					t.Errorf("method = %q", got)
				}
			}},
		{name: "gatewayclass", doc: gwDoc("GatewayClass", "controllerName: istio.io/gateway-controller"), want: KindGatewayClass},
		{name: "referencegrant v1beta1", doc: strings.Replace(gwDoc("ReferenceGrant", "from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}]\nto: [{group: '', kind: Service}]"), "/v1", "/v1beta1", 1),
			want: KindReferenceGrant},
		{name: "creation timestamp", doc: strings.Replace(gwDoc("HTTPRoute", "parentRefs: [{name: gw}]"), "  name: x\n", "  name: x\n  creationTimestamp: 2024-01-02T03:04:05Z\n", 1),
			want: KindHTTPRoute, check: func(t *testing.T, o *GatewayAPIObject) {
				if got := o.HTTPRoute.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"); got != "2024-01-02T03:04:05Z" {
					t.Errorf("creationTimestamp = %s", got)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, _, errs := Parse("t.yaml", []byte(tc.doc))
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errStrings(errs))
			}
			if len(rs) != 1 || rs[0].Kind != tc.want || rs[0].GatewayAPI == nil || rs[0].Spec != nil {
				t.Fatalf("got %+v, want one %s", rs, tc.want)
			}
			if rs[0].Meta.Namespace != DefaultNamespace {
				t.Errorf("namespace = %q", rs[0].Meta.Namespace)
			}
			if tc.check != nil {
				tc.check(t, rs[0].GatewayAPI)
			}
		})
	}
}

func TestValidateGatewayAPI(t *testing.T) {
	cases := []struct {
		name, kind, spec string
		want             []string
	}{
		{name: "unknown field", kind: "HTTPRoute", spec: "parentRefs: [{name: gw}]\nrules: [{backendRef: [{name: b}]}]",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].backendRef: unknown field "backendRef" (did you mean "backendRefs"?)`}},
		{name: "wrong type", kind: "HTTPRoute", spec: "rules:\n- backendRefs: [{name: b, port: eighty}]",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].backendRefs[0].port: expected an integer, got the string "eighty"`}},
		{name: "port required", kind: "HTTPRoute", spec: "rules:\n- backendRefs:\n  - name: b",
			want: []string{`t.yaml:8: HTTPRoute default/x: spec.rules[0].backendRefs[0].port: is required for a Service backend`}},
		{name: "bad path type", kind: "HTTPRoute", spec: "rules:\n- matches:\n  - path: {type: Prefix, value: /a}",
			want: []string{`t.yaml:8: HTTPRoute default/x: spec.rules[0].matches[0].path.type: unknown path match type "Prefix" (want Exact, PathPrefix or RegularExpression)`}},
		{name: "path without slash", kind: "HTTPRoute", spec: "rules:\n- matches:\n  - path: {value: a}",
			want: []string{`t.yaml:8: HTTPRoute default/x: spec.rules[0].matches[0].path.value: must start with "/", got "a"`}},
		{name: "bad regex", kind: "HTTPRoute", spec: "rules:\n- matches:\n  - path: {type: RegularExpression, value: '/a('}",
			want: []string{"t.yaml:8: HTTPRoute default/x: spec.rules[0].matches[0].path.value: invalid regular expression (RE2): error parsing regexp: missing closing ): `/a(`"}},
		{name: "filter without config", kind: "HTTPRoute", spec: "rules:\n- filters:\n  - type: RequestRedirect",
			want: []string{`t.yaml:8: HTTPRoute default/x: spec.rules[0].filters[0].requestRedirect: is required for a filter of type RequestRedirect`}},
		{name: "redirect and rewrite", kind: "HTTPRoute", spec: "rules:\n- filters:\n  - {type: RequestRedirect, requestRedirect: {scheme: https}}\n  - {type: URLRewrite, urlRewrite: {hostname: a.b}}",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together`}},
		{name: "prefix rewrite needs prefix match", kind: "HTTPRoute", spec: "rules:\n- matches: [{path: {type: Exact, value: /a}}]\n  filters:\n  - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}",
			want: []string{`t.yaml:9: HTTPRoute default/x: spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match`}},
		{name: "redirect code", kind: "HTTPRoute", spec: "rules:\n- filters:\n  - {type: RequestRedirect, requestRedirect: {statusCode: 404}}",
			want: []string{`t.yaml:8: HTTPRoute default/x: spec.rules[0].filters[0].requestRedirect.statusCode: must be 301, 302, 303, 307 or 308, got 404`}},
		{name: "bad timeout", kind: "HTTPRoute", spec: "rules:\n- timeouts: {request: 1.5s}",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].timeouts.request: "1.5s" is not a Gateway API duration (for example 10s, 500ms or 1h30m)`}},
		{name: "backend longer than request", kind: "HTTPRoute", spec: "rules:\n- timeouts: {request: 1s, backendRequest: 2s}",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request (1s)`}},
		{name: "duplicate header match", kind: "HTTPRoute", spec: "rules:\n- matches: [{headers: [{name: a, value: x}, {name: A, value: y}]}]",
			want: []string{`t.yaml:7: HTTPRoute default/x: spec.rules[0].matches[0].headers[1].name: "A" is already matched by spec.rules[0].matches[0].headers[0]`}},
		{name: "wildcard hostname in middle", kind: "HTTPRoute", spec: "hostnames: ['a.*.com']",
			want: []string{`t.yaml:6: HTTPRoute default/x: spec.hostnames[0]: "a.*.com" is not a valid host: a wildcard must be "*" or a leading "*."`}},
		{name: "grpc exact needs service or method", kind: "GRPCRoute", spec: "rules:\n- matches: [{method: {type: Exact}}]",
			want: []string{`t.yaml:7: GRPCRoute default/x: spec.rules[0].matches[0].method: one of service and method is required`}},
		{name: "gateway duplicate listener", kind: "Gateway", spec: "gatewayClassName: istio\nlisteners:\n- {name: a, port: 80, protocol: HTTP}\n- {name: a, port: 81, protocol: HTTP}",
			want: []string{`t.yaml:9: Gateway.gateway.networking.k8s.io default/x: spec.listeners[1].name: listener name "a" is already used by spec.listeners[0]`}},
		{name: "https needs certificate", kind: "Gateway", spec: "gatewayClassName: istio\nlisteners:\n- {name: a, port: 443, protocol: HTTPS}",
			want: []string{`t.yaml:8: Gateway.gateway.networking.k8s.io default/x: spec.listeners[0].tls.certificateRefs: is required when TLS is terminated (mode Terminate)`}},
		{name: "gateway class required", kind: "Gateway", spec: "listeners: [{name: a, port: 80, protocol: HTTP}]",
			want: []string{`t.yaml:5: Gateway.gateway.networking.k8s.io default/x: spec.gatewayClassName: is required (Trellis serves the classes istio and trellis)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, failed, errs := Parse("t.yaml", []byte(gwDoc(tc.kind, tc.spec)))
			if diff := cmp.Diff(tc.want, errStrings(errs)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			if tc.want != nil && (len(rs) != 0 || len(failed) != 1) {
				t.Errorf("got resources %v failed %v, want none and one failed", rs, failed)
			}
		})
	}
}

func TestGatewayAPIAPIVersion(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{name: "httproute in istio group", doc: specDoc("HTTPRoute", "rules: []"),
			want: []string{`t.yaml:1: HTTPRoute default/x: apiVersion: unsupported apiVersion "networking.istio.io/v1" for HTTPRoute (want gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1)`}},
		{name: "istio gateway stays istio", doc: specDoc("Gateway", "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]")},
		{name: "unknown gateway api kind", doc: gwDoc("TCPRoute", "rules: []"),
			want: []string{`t.yaml:2: kind: unknown kind "TCPRoute" in gateway.networking.k8s.io (Trellis reads GatewayClass, Gateway, HTTPRoute, GRPCRoute and ReferenceGrant)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, errs := Parse("t.yaml", []byte(tc.doc))
			if diff := cmp.Diff(tc.want, errStrings(errs)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGatewayDuration(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"10s", true}, {"500ms", true}, {"1h30m", true}, {"0s", true}, {"1.5s", false}, {"", false}, {"-1s", false}, {"1d", false}} {
		t.Run(tc.in, func(t *testing.T) {
			if _, err := ParseGatewayDuration(tc.in); (err == nil) != tc.ok {
				t.Errorf("ParseGatewayDuration(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}

// FuzzParseGatewayAPI is FuzzParse seeded with Gateway API documents.
//
//	go test -run '^$' -fuzz FuzzParseGatewayAPI -fuzztime 30s ./internal/config
func FuzzParseGatewayAPI(f *testing.F) {
	for _, s := range []string{
		gwDoc("HTTPRoute", "parentRefs: [{name: gw}]\nrules: [{matches: [{path: {value: /a}}], backendRefs: [{name: b, port: 80}]}]"),
		gwDoc("Gateway", "gatewayClassName: istio\nlisteners: [{name: a, port: 80, protocol: HTTP}]"),
		gwDoc("GRPCRoute", "rules: [{matches: [{method: {service: s}}]}]"),
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [~, {filters: [{type: 7}]}]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := parseFile("fuzz.yaml", data)
		for _, e := range file.Errors {
			if e.File == "" || e.Msg == "" {
				t.Errorf("error without file or message: %#v", e)
			}
		}
		for _, r := range file.Resources {
			if r.GatewayAPI != nil && r.Spec != nil {
				t.Errorf("resource with both Spec and GatewayAPI: %+v", r)
			}
		}
	})
}
