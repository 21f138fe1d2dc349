package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// securityDoc is specDoc for the security.istio.io kinds.
func securityDoc(kind, spec string) string {
	return strings.Replace(specDoc(kind, spec), "networking.istio.io/v1", "security.istio.io/v1", 1)
}

func runSecurityCases(t *testing.T, kind string, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, _, errs := Parse("t.yaml", []byte(securityDoc(kind, tc.spec)))
			if diff := cmp.Diff(tc.want, errStrings(errs)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			if tc.want == nil && len(rs) != 1 {
				t.Errorf("got %d resources, want 1", len(rs))
			}
		})
	}
}

func TestSecurityAPIVersion(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{name: "v1", doc: securityDoc("PeerAuthentication", "mtls: {mode: STRICT}")},
		{name: "v1beta1", doc: strings.Replace(securityDoc("PeerAuthentication", "mtls: {mode: STRICT}"), "/v1", "/v1beta1", 1)},
		{name: "networking group refused", doc: specDoc("AuthorizationPolicy", "action: DENY"),
			want: []string{`t.yaml:1: AuthorizationPolicy default/x: apiVersion: unsupported apiVersion "networking.istio.io/v1" for AuthorizationPolicy (want security.istio.io/v1, security.istio.io/v1beta1)`}},
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

func TestValidatePeerAuthentication(t *testing.T) {
	runSecurityCases(t, "PeerAuthentication", []specCase{
		{name: "mesh strict", spec: "mtls: {mode: STRICT}"},
		{name: "empty spec", spec: "{}"},
		{name: "port level", spec: "selector: {matchLabels: {app: a}}\nmtls: {mode: STRICT}\nportLevelMtls: {8080: {mode: DISABLE}}"},
		{name: "unknown mode", spec: "mtls: {mode: STRICTER}",
			want: []string{`t.yaml:6: PeerAuthentication default/x: spec.mtls.mode: "STRICTER" is not a known value (want one of UNSET, DISABLE, PERMISSIVE, STRICT)`}},
		{name: "port level without selector", spec: "portLevelMtls: {8080: {mode: DISABLE}}",
			want: []string{"t.yaml:6: PeerAuthentication default/x: spec.portLevelMtls: portLevelMtls requires a workload selector"}},
		{name: "bad label", spec: "selector: {matchLabels: {'a b': x}}",
			want: []string{`t.yaml:6: PeerAuthentication default/x: spec.selector.matchLabels[a b]: label key "a b" is not valid (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`}},
	})
}

func TestValidateRequestAuthentication(t *testing.T) {
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`
	runSecurityCases(t, "RequestAuthentication", []specCase{
		{name: "remote jwks", spec: "jwtRules:\n- issuer: https://issuer.example\n  jwksUri: https://issuer.example/jwks\n  audiences: [api]"},
		{name: "inline jwks and sources", spec: "jwtRules:\n- issuer: i\n  jwks: '" + jwks + "'\n  fromHeaders: [{name: Authorization, prefix: 'Bearer '}]\n  fromParams: [token]\n  fromCookies: [session]\n  outputClaimToHeaders: [{header: x-sub, claim: sub}]\n  forwardOriginalToken: true"},
		{name: "issuer required", spec: "jwtRules:\n- jwksUri: https://a.example/jwks",
			want: []string{"t.yaml:7: RequestAuthentication default/x: spec.jwtRules[0].issuer: issuer is required"}},
		{name: "bad jwks uri", spec: "jwtRules:\n- issuer: i\n  jwksUri: ftp://x",
			want: []string{`t.yaml:8: RequestAuthentication default/x: spec.jwtRules[0].jwksUri: "ftp://x" is not an http or https URL`}},
		{name: "bad inline jwks", spec: "jwtRules:\n- issuer: i\n  jwks: 'not json'",
			want: []string{"t.yaml:8: RequestAuthentication default/x: spec.jwtRules[0].jwks: must be a JSON Web Key Set with at least one key"}},
		{name: "duplicate issuer", spec: "jwtRules:\n- issuer: i\n- issuer: i",
			want: []string{`t.yaml:8: RequestAuthentication default/x: spec.jwtRules[1].issuer: issuer "i" is already used by jwtRules[0]`}},
		{name: "claim header twice", spec: "jwtRules:\n- issuer: i\n  outputClaimToHeaders: [{header: x-a, claim: a}, {header: x-a, claim: b}]",
			want: []string{`t.yaml:8: RequestAuthentication default/x: spec.jwtRules[0].outputClaimToHeaders[1].header: header "x-a" is set twice`}},
		{name: "target ref without group", spec: "targetRef: {kind: Gateway, name: gw}",
			want: []string{`t.yaml:6: RequestAuthentication default/x: spec.targetRef: kind "Gateway", group "": only Gateway (group gateway.networking.k8s.io) targets are supported; Service and ServiceEntry targets are for ambient waypoints`}},
		{name: "target ref", spec: "targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}"},
		{name: "target refs with a selector", spec: "selector: {matchLabels: {app: a}}\ntargetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]",
			want: []string{"t.yaml:6: RequestAuthentication default/x: spec.selector: cannot be set with targetRef or targetRefs"}},
		{name: "target ref to a service", spec: "targetRefs: [{kind: Service, name: web}]",
			want: []string{`t.yaml:6: RequestAuthentication default/x: spec.targetRefs[0]: kind "Service", group "": only Gateway (group gateway.networking.k8s.io) targets are supported; Service and ServiceEntry targets are for ambient waypoints`}},
		{name: "target ref in another namespace", spec: "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, namespace: other}]",
			want: []string{"t.yaml:6: RequestAuthentication default/x: spec.targetRefs[0].namespace: omit it: a policy targets Gateways of its own namespace only"}},
	})
}

func TestValidateAuthorizationPolicy(t *testing.T) {
	runSecurityCases(t, "AuthorizationPolicy", []specCase{
		{name: "deny all", spec: "{}"},
		{name: "allow full", spec: `action: ALLOW
rules:
- from:
  - source: {principals: [cluster.local/ns/default/sa/a, "*/sa/b"], namespaces: [default], ipBlocks: [10.0.0.0/8]}
  to:
  - operation: {methods: [GET], paths: [/api/*, "*.json"], ports: ["8080"], hosts: ["*.example.com"]}
  when:
  - {key: "request.auth.claims[iss]", values: ["https://i"]}
  - {key: "request.headers[x-user]", notValues: [eve]}
  - {key: source.ip, values: [127.0.0.1]}
  - {key: destination.port, values: ["9080"]}`},
		{name: "custom", spec: "action: CUSTOM\nprovider: {name: ext}\nrules: [{to: [{operation: {paths: [/admin]}}]}]"},
		{name: "custom without provider", spec: "action: CUSTOM",
			want: []string{"t.yaml:5: AuthorizationPolicy default/x: spec.provider.name: action CUSTOM needs a provider name (a meshConfig extensionProvider)"}},
		{name: "provider without custom", spec: "action: DENY\nprovider: {name: ext}",
			want: []string{"t.yaml:7: AuthorizationPolicy default/x: spec.provider: provider is only allowed with action CUSTOM"}},
		{name: "empty source", spec: "rules: [{from: [{source: {}}]}]",
			want: []string{"t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source: source must not be empty"}},
		{name: "star in the middle", spec: "rules: [{to: [{operation: {paths: [/a*b]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].to[0].operation.paths[0]: "/a*b": "*" is allowed only alone, as a prefix or as a suffix`}},
		{name: "relative path", spec: "rules: [{to: [{operation: {paths: [admin]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].to[0].operation.paths[0]: "admin" must start with "/" or "*"`}},
		{name: "bad port", spec: "rules: [{to: [{operation: {ports: [http]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].to[0].operation.ports[0]: "http" is not a port number (1-65535)`}},
		{name: "bad ip block", spec: "rules: [{from: [{source: {ipBlocks: [10.0.0.300]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.300" is not an IP address or CIDR block`}},
		{name: "unknown when key", spec: "rules: [{when: [{key: request.path, values: [/]}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].when[0].key: unknown key "request.path" (Istio's keys: request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port, connection.sni)`}},
		{name: "when without values", spec: "rules: [{when: [{key: source.namespace}]}]",
			want: []string{"t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].when[0]: values or notValues is required"}},
		{name: "service accounts and trust domains", spec: "rules: [{from: [{source: {serviceAccounts: [default/a, b], notServiceAccounts: [c], trustDomains: [\"*.example\"], notTrustDomains: [evil.example]}}]}]"},
		{name: "service account wildcard", spec: "rules: [{from: [{source: {serviceAccounts: [\"default/*\"]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source.serviceAccounts[0]: "default/*": no wildcard is allowed in a service account`}},
		{name: "service account shape", spec: "rules: [{from: [{source: {notServiceAccounts: [a/b/c]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source.notServiceAccounts[0]: "a/b/c": want NAMESPACE/SERVICE_ACCOUNT or SERVICE_ACCOUNT`}},
		{name: "service accounts with principals", spec: "rules: [{from: [{source: {serviceAccounts: [a], principals: [cluster.local/ns/default/sa/a]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source.serviceAccounts: cannot be set with principals or namespaces`}},
		{name: "trust domain star in the middle", spec: "rules: [{from: [{source: {trustDomains: [\"a*b\"]}}]}]",
			want: []string{`t.yaml:6: AuthorizationPolicy default/x: spec.rules[0].from[0].source.trustDomains[0]: "a*b": "*" is allowed only alone, as a prefix or as a suffix`}},
		{name: "custom with jwt claims", spec: "action: CUSTOM\nprovider: {name: e}\nrules: [{when: [{key: request.auth.principal, values: [a]}]}]",
			want: []string{`t.yaml:8: AuthorizationPolicy default/x: spec.rules[0].when[0].key: "request.auth.principal" is not supported with action CUSTOM`}},
	})
}
