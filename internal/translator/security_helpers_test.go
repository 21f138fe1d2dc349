package translator

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// secBase is the mesh of the security tests: service web (HTTP 8080, TCP
// 9000) in namespace app with a sidecar'd workload web-v1 and a legacy
// workload without a sidecar; a client; an ingress gateway.
const secBase = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: [web.app.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v1, namespace: app}
spec: {address: 127.0.8.1, serviceAccount: web, labels: {app: web, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy, namespace: app}
spec: {address: 127.0.8.3, labels: {app: web, version: legacy}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: app}
spec: {address: 127.0.8.2, serviceAccount: client, labels: {app: client, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress, namespace: istio-system}
spec: {address: 127.0.8.9, serviceAccount: ingress, labels: {istio: ingressgateway, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: app}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - {port: {number: 8080, name: http, protocol: HTTP}, defaultEndpoint: "127.0.7.1:8080"}
  - {port: {number: 9000, name: tcp, protocol: TCP}, defaultEndpoint: "127.0.7.1:9000"}
`

// secSnapshot loads secBase plus extra through the real config loader (so
// fixtures are validated as users' files are) with mesh settings edited by
// meshEdit (may be nil).
func secSnapshot(t testing.TB, extra string, meshEdit func(*snapshot.Mesh)) *snapshot.Snapshot {
	t.Helper()
	rs, _, errs := config.Parse("sec.yaml", []byte(secBase+"\n---\n"+extra))
	for _, e := range errs {
		t.Fatalf("fixture: %v", e)
	}
	set := config.NewSet(rs)
	m := snapshot.DefaultMesh()
	if meshEdit != nil {
		meshEdit(&m)
	}
	return &snapshot.Snapshot{Version: 1, Config: set, Registry: registry.NewServiceEntrySource().Registry(set), Mesh: m}
}

func webProxy() Proxy {
	return Proxy{ID: "sidecar~127.0.8.1~web-v1.app~app.svc.cluster.local", Type: Sidecar, Namespace: "app", Name: "web-v1", Address: "127.0.8.1"}
}

func clientProxy() Proxy {
	return Proxy{ID: "sidecar~127.0.8.2~client.app~app.svc.cluster.local", Type: Sidecar, Namespace: "app", Name: "client", Address: "127.0.8.2"}
}

func unmarshalAny[T proto.Message](t testing.TB, a *anypb.Any, m T) T {
	t.Helper()
	if err := anypb.UnmarshalTo(a, m, proto.UnmarshalOptions{}); err != nil {
		t.Fatalf("unmarshal %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

// chainHCM returns the HCM of a filter chain, or nil.
func chainHCM(t testing.TB, fc *listenerv3.FilterChain) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, f := range fc.GetFilters() {
		if f.GetName() == nameHCM {
			return unmarshalAny(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
		}
	}
	return nil
}

// authzReq is one request of the authorization table.
type authzReq struct {
	peer    string // SPIFFE ID of the client certificate; "" is plain text
	ip      string // direct remote IP; default 127.0.8.2
	remote  string // remote IP as derived from XFF; "" is ip
	port    uint32 // default 8080 (HTTP); 9000 is the TCP port
	method  string // default GET
	host    string // default web.app.svc.cluster.local
	path    string // default /
	sni     string
	headers map[string]string
	jwt     map[string]any // verified payload; its "iss" picks the provider
	// extAuthz is the external authorizer's answer when a CUSTOM rule
	// enables it.
	extAuthz bool
}

// verdicts of simulateAuthz.
const (
	allowed = "allow"
	denied  = "deny"    // 403 RBAC: access denied, or a closed TCP connection
	refused = "refused" // no filter chain accepts the connection (STRICT and plain text)
)

// simulateAuthz runs r through the inbound listener the translator emits
// for web-v1, with Envoy's filter order and the real RBAC engine
// (internal/authz): jwt_authn metadata, then each rbac filter (shadow rules
// enabling ext_authz, then enforced rules), first denial wins.
func simulateAuthz(t *testing.T, snap *snapshot.Snapshot, r authzReq) string {
	t.Helper()
	res := Translate(snap, webProxy())
	port := r.port
	if port == 0 {
		port = 8080
	}
	l, ok := res.Listeners["inbound_127.0.8.1_"+portString(port)].(*listenerv3.Listener)
	if !ok {
		t.Fatalf("no inbound listener on %d", port)
	}
	want := "raw_buffer"
	if r.peer != "" {
		want = "tls"
	}
	var fc *listenerv3.FilterChain
	for _, c := range l.GetFilterChains() {
		tp := c.GetFilterChainMatch().GetTransportProtocol()
		if tp == want || (tp == "" && r.peer == "") {
			fc = c
		}
	}
	if fc == nil {
		return refused
	}
	req := &authz.Request{
		DirectRemoteIP:  netip.MustParseAddr(cmpOr(r.ip, "127.0.8.2")),
		DestinationIP:   netip.MustParseAddr("127.0.8.1"),
		DestinationPort: uint16(port),
		SNI:             r.sni,
	}
	if r.remote != "" {
		req.RemoteIP = netip.MustParseAddr(r.remote)
	}
	if r.peer != "" {
		req.Peer = &authz.Peer{URIs: []string{r.peer}}
	}
	h := chainHCM(t, fc)
	if h == nil { // TCP: network rbac filters in order
		for _, f := range fc.GetFilters() {
			if f.GetName() != nameRBACNetwork {
				continue
			}
			cfg := unmarshalAny(t, f.GetTypedConfig(), &rbacnetv3.RBAC{})
			if !evaluate(t, cfg.GetRules(), req).Allowed {
				return denied
			}
		}
		return allowed
	}
	req.HTTP = true
	req.Method, req.Host, req.Path = cmpOr(r.method, "GET"), cmpOr(r.host, "web.app.svc.cluster.local"), cmpOr(r.path, "/")
	req.Headers = http.Header{}
	for k, v := range r.headers {
		req.Headers.Set(k, v)
	}
	extEnabled := false
	for _, f := range h.GetHttpFilters() {
		switch f.GetName() {
		case nameJWTAuthn:
			cfg := unmarshalAny(t, f.GetTypedConfig(), &jwtv3.JwtAuthentication{})
			if r.jwt == nil {
				continue
			}
			for _, p := range cfg.GetProviders() {
				if p.GetIssuer() == r.jwt["iss"] {
					payload, err := structpb.NewStruct(r.jwt)
					if err != nil {
						t.Fatal(err)
					}
					req.Metadata = map[string]*structpb.Struct{nameJWTAuthn: {Fields: map[string]*structpb.Value{
						p.GetPayloadInMetadata(): structpb.NewStructValue(payload),
					}}}
				}
			}
		case nameRBACHTTP:
			cfg := unmarshalAny(t, f.GetTypedConfig(), &rbachttpv3.RBAC{})
			if cfg.GetShadowRules() != nil {
				d := evaluate(t, cfg.GetShadowRules(), req)
				extEnabled = d.Matched && strings.HasPrefix(d.Policy, extAuthzPolicyPrefix) &&
					cfg.GetShadowRulesStatPrefix() == extAuthzStatPrefix
			}
			if cfg.GetRules() != nil && !evaluate(t, cfg.GetRules(), req).Allowed {
				return denied
			}
		case nameExtAuthz:
			if extEnabled && !r.extAuthz {
				return denied
			}
		}
	}
	return allowed
}

func evaluate(t *testing.T, rules *rbacv3.RBAC, req *authz.Request) authz.Decision {
	t.Helper()
	p, err := authz.Compile(rules)
	if err != nil {
		t.Fatalf("authz.Compile: %v", err)
	}
	return p.Evaluate(req)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
