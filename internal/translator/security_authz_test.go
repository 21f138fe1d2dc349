package translator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// ap renders an AuthorizationPolicy document; spec is YAML indented by two.
func ap(ns, name, spec string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n", name, ns)
	for _, line := range strings.Split(strings.Trim(spec, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

func docs(ds ...string) string { return strings.Join(ds, "\n---\n") }

const (
	idClient  = "spiffe://cluster.local/ns/app/sa/client"
	idOther   = "spiffe://cluster.local/ns/other/sa/robot"
	issuer    = "https://issuer.example"
	reqAuthnA = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: https://issuer.example/jwks`
)

var (
	jwtAlice = map[string]any{"iss": issuer, "sub": "alice", "aud": "web", "groups": []any{"admins", "dev"}, "org": map[string]any{"team": "blue"}, "azp": "cli"}
	jwtBob   = map[string]any{"iss": issuer, "sub": "bob", "aud": []any{"other", "web2"}}
	jwtOther = map[string]any{"iss": "https://other.example", "sub": "alice"}
)

// TestAuthorizationTable runs Istio AuthorizationPolicies through the
// translation and the proxy's RBAC engine (internal/authz): the policy YAML
// and request attributes on the left, Istio's documented verdict on the right.
func TestAuthorizationTable(t *testing.T) {
	allowFrom := func(src string) string { return ap("app", "p", "action: ALLOW\nrules:\n- from:\n  - source: "+src) }
	allowTo := func(op string) string { return ap("app", "p", "action: ALLOW\nrules:\n- to:\n  - operation: "+op) }
	allowWhen := func(cond string) string { return ap("app", "p", "action: ALLOW\nrules:\n- when:\n  - "+cond) }
	denyTo := func(op string) string { return ap("app", "d", "action: DENY\nrules:\n- to:\n  - operation: "+op) }
	custom := ap("app", "ext", "action: CUSTOM\nprovider: {name: authz}\nrules:\n- to:\n  - operation: {paths: [/secure/*]}")
	withProvider := func(m *snapshot.Mesh) {
		m.ExtensionProviders = []snapshot.ExtAuthzProvider{{Name: "authz", Service: "authz.app.svc.cluster.local", Port: 9191}}
	}
	cases := []struct {
		name     string
		policies string
		mesh     func(*snapshot.Mesh)
		req      authzReq
		want     string
	}{
		// Scope and the shape of a policy.
		{name: "no policy allows", req: authzReq{}, want: allowed},
		{name: "empty spec denies everything", policies: ap("app", "p", "{}"), req: authzReq{peer: idClient}, want: denied},
		{name: "allow with one empty rule allows everything", policies: ap("app", "p", "rules: [{}]"), req: authzReq{}, want: allowed},
		{name: "deny with one empty rule denies everything", policies: ap("app", "p", "action: DENY\nrules: [{}]"), req: authzReq{peer: idClient}, want: denied},
		{name: "deny without rules has no effect", policies: ap("app", "p", "action: DENY"), req: authzReq{}, want: allowed},
		{name: "selector not matching does not apply", policies: ap("app", "p", "selector: {matchLabels: {app: other}}"), req: authzReq{}, want: allowed},
		{name: "selector matching applies", policies: ap("app", "p", "selector: {matchLabels: {app: web}}"), req: authzReq{}, want: denied},
		{name: "other namespace does not apply", policies: ap("other", "p", "{}"), req: authzReq{}, want: allowed},
		{name: "root namespace applies mesh-wide", policies: ap("istio-system", "p", "{}"), req: authzReq{}, want: denied},
		{name: "root namespace selector applies in every namespace", policies: ap("istio-system", "p", "selector: {matchLabels: {app: web}}\naction: DENY\nrules: [{}]"), req: authzReq{}, want: denied},

		// from.principals, namespaces, ipBlocks.
		{name: "principal exact", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "principal mismatch", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{peer: idOther}, want: denied},
		{name: "principal needs mTLS", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{}, want: denied},
		{name: "principal star is any authenticated peer", policies: allowFrom(`{principals: ["*"]}`), req: authzReq{peer: idOther}, want: allowed},
		{name: "principal star refuses plain text", policies: allowFrom(`{principals: ["*"]}`), req: authzReq{}, want: denied},
		{name: "principal prefix", policies: allowFrom(`{principals: ["cluster.local/ns/app/*"]}`), req: authzReq{peer: idClient}, want: allowed},
		{name: "principal prefix mismatch", policies: allowFrom(`{principals: ["cluster.local/ns/app/*"]}`), req: authzReq{peer: idOther}, want: denied},
		{name: "principal suffix", policies: allowFrom(`{principals: ["*/sa/client"]}`), req: authzReq{peer: idClient}, want: allowed},
		{name: "spiffe id of another trust domain", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{peer: "spiffe://evil.example/ns/app/sa/client"}, want: denied},
		{name: "notPrincipals excludes", policies: allowFrom("{notPrincipals: [cluster.local/ns/app/sa/client]}"), req: authzReq{peer: idClient}, want: denied},
		{name: "notPrincipals lets others in", policies: allowFrom("{notPrincipals: [cluster.local/ns/app/sa/client]}"), req: authzReq{peer: idOther}, want: allowed},
		{name: "namespace", policies: allowFrom("{namespaces: [app]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "namespace mismatch", policies: allowFrom("{namespaces: [app]}"), req: authzReq{peer: idOther}, want: denied},
		{name: "namespace needs mTLS", policies: allowFrom("{namespaces: [app]}"), req: authzReq{}, want: denied},
		{name: "namespace is not a substring match", policies: allowFrom("{namespaces: [ap]}"), req: authzReq{peer: idClient}, want: denied},
		{name: "notNamespaces", policies: allowFrom("{notNamespaces: [app]}"), req: authzReq{peer: idClient}, want: denied},
		{name: "ipBlocks cidr", policies: allowFrom("{ipBlocks: [127.0.8.0/24]}"), req: authzReq{}, want: allowed},
		{name: "ipBlocks single address mismatch", policies: allowFrom("{ipBlocks: [10.1.2.3]}"), req: authzReq{}, want: denied},
		{name: "notIpBlocks", policies: allowFrom("{notIpBlocks: [127.0.8.2]}"), req: authzReq{}, want: denied},
		{name: "remoteIpBlocks uses the xff client", policies: allowFrom("{remoteIpBlocks: [203.0.113.0/24]}"), req: authzReq{remote: "203.0.113.7"}, want: allowed},
		{name: "ipBlocks ignore xff", policies: allowFrom("{ipBlocks: [203.0.113.0/24]}"), req: authzReq{remote: "203.0.113.7"}, want: denied},
		{name: "serviceAccount with namespace", policies: allowFrom("{serviceAccounts: [app/client]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "serviceAccount in the policy's namespace", policies: allowFrom("{serviceAccounts: [client]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "serviceAccount of another namespace", policies: allowFrom("{serviceAccounts: [client]}"), req: authzReq{peer: "spiffe://cluster.local/ns/other/sa/client"}, want: denied},
		{name: "serviceAccount in any trust domain", policies: allowFrom("{serviceAccounts: [app/client]}"), req: authzReq{peer: "spiffe://td2.example/ns/app/sa/client"}, want: allowed},
		{name: "serviceAccount is not a prefix", policies: allowFrom("{serviceAccounts: [app/client]}"), req: authzReq{peer: "spiffe://cluster.local/ns/app/sa/client2"}, want: denied},
		{name: "serviceAccount needs mTLS", policies: allowFrom("{serviceAccounts: [app/client]}"), req: authzReq{}, want: denied},
		{name: "notServiceAccounts", policies: allowFrom("{notServiceAccounts: [other/robot]}"), req: authzReq{peer: idOther}, want: denied},
		{name: "notServiceAccounts lets others in", policies: allowFrom("{notServiceAccounts: [other/robot]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "trustDomain exact", policies: allowFrom("{trustDomains: [cluster.local]}"), req: authzReq{peer: idClient}, want: allowed},
		{name: "trustDomain exact is not a prefix", policies: allowFrom("{trustDomains: [cluster.loc]}"), req: authzReq{peer: idClient}, want: denied},
		{name: "trustDomain suffix", policies: allowFrom(`{trustDomains: ["*.example"]}`), req: authzReq{peer: "spiffe://td2.example/ns/app/sa/client"}, want: allowed},
		{name: "trustDomain prefix mismatch", policies: allowFrom(`{trustDomains: ["td2*"]}`), req: authzReq{peer: idClient}, want: denied},
		{name: "trustDomain star needs mTLS", policies: allowFrom(`{trustDomains: ["*"]}`), req: authzReq{}, want: denied},
		{name: "notTrustDomains", policies: allowFrom("{notTrustDomains: [evil.example]}"), req: authzReq{peer: "spiffe://evil.example/ns/app/sa/client"}, want: denied},
		{name: "source fields are ANDed", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client], ipBlocks: [10.0.0.0/8]}"), req: authzReq{peer: idClient}, want: denied},

		// to.operation.
		{name: "method", policies: allowTo("{methods: [GET]}"), req: authzReq{method: "GET"}, want: allowed},
		{name: "method mismatch", policies: allowTo("{methods: [GET]}"), req: authzReq{method: "POST"}, want: denied},
		{name: "notMethods", policies: allowTo("{notMethods: [DELETE]}"), req: authzReq{method: "DELETE"}, want: denied},
		{name: "path exact", policies: allowTo("{paths: [/api]}"), req: authzReq{path: "/api"}, want: allowed},
		{name: "path exact is not a prefix", policies: allowTo("{paths: [/api]}"), req: authzReq{path: "/api/v1"}, want: denied},
		{name: "path prefix", policies: allowTo(`{paths: ["/api/*"]}`), req: authzReq{path: "/api/v1/items"}, want: allowed},
		{name: "path suffix", policies: allowTo(`{paths: ["*.json"]}`), req: authzReq{path: "/a/b.json"}, want: allowed},
		{name: "path star", policies: allowTo(`{paths: ["*"]}`), req: authzReq{path: "/anything"}, want: allowed},
		{name: "path ignores the query", policies: allowTo("{paths: [/api]}"), req: authzReq{path: "/api?x=/admin"}, want: allowed},
		{name: "path is case sensitive", policies: allowTo("{paths: [/api]}"), req: authzReq{path: "/API"}, want: denied},
		{name: "notPaths", policies: allowTo(`{notPaths: ["/admin*"]}`), req: authzReq{path: "/admin/x"}, want: denied},
		{name: "host", policies: allowTo("{hosts: [web.app.svc.cluster.local]}"), req: authzReq{}, want: allowed},
		{name: "host is case insensitive", policies: allowTo("{hosts: [web.app.svc.cluster.local]}"), req: authzReq{host: "WEB.app.svc.cluster.local"}, want: allowed},
		{name: "host wildcard", policies: allowTo(`{hosts: ["*.example.com"]}`), req: authzReq{host: "api.example.com"}, want: allowed},
		{name: "host mismatch", policies: allowTo("{hosts: [web.app.svc.cluster.local]}"), req: authzReq{host: "evil.example.com"}, want: denied},
		{name: "port", policies: allowTo(`{ports: ["8080"]}`), req: authzReq{}, want: allowed},
		{name: "port mismatch", policies: allowTo(`{ports: ["9999"]}`), req: authzReq{}, want: denied},
		{name: "operation fields are ANDed", policies: allowTo(`{methods: [GET], paths: [/a]}`), req: authzReq{method: "GET", path: "/b"}, want: denied},
		{name: "values in a field are ORed", policies: allowTo(`{methods: [GET, POST]}`), req: authzReq{method: "POST"}, want: allowed},
		{name: "rules are ORed", policies: ap("app", "p", "rules:\n- to: [{operation: {methods: [GET]}}]\n- to: [{operation: {paths: [/x]}}]"), req: authzReq{method: "POST", path: "/x"}, want: allowed},
		{name: "from and to are ANDed", policies: ap("app", "p", "rules:\n- from: [{source: {principals: [cluster.local/ns/app/sa/client]}}]\n  to: [{operation: {methods: [GET]}}]"), req: authzReq{peer: idClient, method: "PUT"}, want: denied},

		// when conditions.
		{name: "when header", policies: allowWhen(`{key: "request.headers[x-user]", values: [alice]}`), req: authzReq{headers: map[string]string{"X-User": "alice"}}, want: allowed},
		{name: "when header mismatch", policies: allowWhen(`{key: "request.headers[x-user]", values: [alice]}`), req: authzReq{headers: map[string]string{"X-User": "bob"}}, want: denied},
		{name: "when header notValues", policies: allowWhen(`{key: "request.headers[x-user]", notValues: [eve]}`), req: authzReq{headers: map[string]string{"X-User": "eve"}}, want: denied},
		{name: "when source.ip", policies: allowWhen(`{key: source.ip, values: [127.0.8.2]}`), req: authzReq{}, want: allowed},
		{name: "when remote.ip", policies: allowWhen(`{key: remote.ip, values: [198.51.100.0/24]}`), req: authzReq{remote: "198.51.100.1"}, want: allowed},
		{name: "when source.namespace", policies: allowWhen(`{key: source.namespace, values: [other]}`), req: authzReq{peer: idOther}, want: allowed},
		{name: "when source.principal", policies: allowWhen(`{key: source.principal, values: [cluster.local/ns/app/sa/client]}`), req: authzReq{peer: idClient}, want: allowed},
		{name: "when destination.port", policies: allowWhen(`{key: destination.port, values: ["8080"]}`), req: authzReq{}, want: allowed},
		{name: "when destination.ip", policies: allowWhen(`{key: destination.ip, values: [127.0.8.1]}`), req: authzReq{}, want: allowed},
		{name: "when connection.sni", policies: allowWhen(`{key: connection.sni, values: ["outbound_.8080_.*"]}`), req: authzReq{peer: idClient, sni: "outbound_.8080_._.web.app.svc.cluster.local"}, want: allowed},

		// Request authentication (jwt_authn payloads).
		{name: "requestPrincipals exact", policies: docs(reqAuthnA, allowFrom(`{requestPrincipals: ["https://issuer.example/alice"]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "requestPrincipals other subject", policies: docs(reqAuthnA, allowFrom(`{requestPrincipals: ["https://issuer.example/alice"]}`)), req: authzReq{jwt: jwtBob}, want: denied},
		{name: "requestPrincipals without a token", policies: docs(reqAuthnA, allowFrom(`{requestPrincipals: ["*"]}`)), req: authzReq{}, want: denied},
		{name: "requestPrincipals star with a token", policies: docs(reqAuthnA, allowFrom(`{requestPrincipals: ["*"]}`)), req: authzReq{jwt: jwtBob}, want: allowed},
		{name: "requestPrincipals of an issuer no RequestAuthentication names", policies: docs(reqAuthnA, allowFrom(`{requestPrincipals: ["https://other.example/alice"]}`)), req: authzReq{jwt: jwtOther}, want: denied},
		{name: "deny requests without a token", policies: docs(reqAuthnA, ap("app", "d", "action: DENY\nrules:\n- from:\n  - source: {notRequestPrincipals: [\"*\"]}")), req: authzReq{}, want: denied},
		{name: "deny requests without a token lets tokens in", policies: docs(reqAuthnA, ap("app", "d", "action: DENY\nrules:\n- from:\n  - source: {notRequestPrincipals: [\"*\"]}")), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "claim in a list", policies: docs(reqAuthnA, allowWhen(`{key: "request.auth.claims[groups]", values: [admins]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "claim missing", policies: docs(reqAuthnA, allowWhen(`{key: "request.auth.claims[groups]", values: [admins]}`)), req: authzReq{jwt: jwtBob}, want: denied},
		{name: "nested claim", policies: docs(reqAuthnA, allowWhen(`{key: "request.auth.claims[org][team]", values: [blue]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "audiences string", policies: docs(reqAuthnA, allowWhen(`{key: request.auth.audiences, values: [web]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "audiences list", policies: docs(reqAuthnA, allowWhen(`{key: request.auth.audiences, values: [web2]}`)), req: authzReq{jwt: jwtBob}, want: allowed},
		{name: "presenter", policies: docs(reqAuthnA, allowWhen(`{key: request.auth.presenter, values: [cli]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},
		{name: "request.auth.principal", policies: docs(reqAuthnA, allowWhen(`{key: request.auth.principal, values: ["https://issuer.example/alice"]}`)), req: authzReq{jwt: jwtAlice}, want: allowed},

		// Evaluation order: CUSTOM, DENY, ALLOW; AUDIT never decides.
		{name: "deny beats allow", policies: docs(ap("app", "p", "rules: [{}]"), denyTo("{paths: [/admin]}")), req: authzReq{path: "/admin"}, want: denied},
		{name: "deny only where it matches", policies: denyTo("{paths: [/admin]}"), req: authzReq{path: "/public"}, want: allowed},
		{name: "any allow policy suffices", policies: docs(allowTo("{paths: [/a]}"), ap("app", "q", "rules: [{to: [{operation: {paths: [/b]}}]}]")), req: authzReq{path: "/b"}, want: allowed},
		{name: "no allow policy matching denies", policies: docs(allowTo("{paths: [/a]}"), ap("app", "q", "rules: [{to: [{operation: {paths: [/b]}}]}]")), req: authzReq{path: "/c"}, want: denied},
		{name: "audit never denies", policies: ap("app", "a", "action: AUDIT\nrules: [{}]"), req: authzReq{}, want: allowed},
		{name: "custom denied by the authorizer", policies: custom, mesh: withProvider, req: authzReq{path: "/secure/x", extAuthz: false}, want: denied},
		{name: "custom allowed by the authorizer", policies: custom, mesh: withProvider, req: authzReq{path: "/secure/x", extAuthz: true}, want: allowed},
		{name: "custom not consulted outside its rules", policies: custom, mesh: withProvider, req: authzReq{path: "/public", extAuthz: false}, want: allowed},
		{name: "custom allow still needs allow policies", policies: docs(custom, allowTo("{paths: [/other]}")), mesh: withProvider, req: authzReq{path: "/secure/x", extAuthz: true}, want: denied},
		{name: "custom with an unknown provider fails closed", policies: custom, req: authzReq{path: "/secure/x", extAuthz: true}, want: denied},

		// TCP (network rbac): HTTP-only fields.
		{name: "tcp principal", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{port: 9000, peer: idClient}, want: allowed},
		{name: "tcp principal mismatch", policies: allowFrom("{principals: [cluster.local/ns/app/sa/client]}"), req: authzReq{port: 9000, peer: idOther}, want: denied},
		{name: "tcp allow rule with http fields is dropped", policies: allowTo("{methods: [GET]}"), req: authzReq{port: 9000, peer: idClient}, want: denied},
		{name: "tcp deny rule loses its http fields", policies: denyTo("{methods: [GET]}"), req: authzReq{port: 9000, peer: idClient}, want: denied},
		{name: "tcp deny by port", policies: denyTo(`{ports: ["9000"]}`), req: authzReq{port: 9000}, want: denied},
		{name: "tcp deny on another port", policies: denyTo(`{ports: ["8080"]}`), req: authzReq{port: 9000}, want: allowed},
		{name: "tcp ipBlocks", policies: allowFrom("{ipBlocks: [127.0.8.2]}"), req: authzReq{port: 9000}, want: allowed},

		// mTLS mode decides whether plain text reaches authorization at all.
		{name: "strict refuses plain text", policies: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}`, req: authzReq{}, want: refused},
		{name: "strict accepts mTLS", policies: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}`, req: authzReq{peer: idClient}, want: allowed},
	}
	if len(cases) < 60 {
		t.Fatalf("the table must hold at least 60 cases, has %d", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := secSnapshot(t, tc.policies, tc.mesh)
			if got := simulateAuthz(t, snap, tc.req); got != tc.want {
				t.Errorf("verdict = %s, want %s", got, tc.want)
			}
		})
	}
}
