package translator

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

const (
	paMeshStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}`
	paNsDisable = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: app}
spec: {mtls: {mode: DISABLE}}`
	paWorkloadPort = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
  portLevelMtls: {9000: {mode: PERMISSIVE}}`
	paWorkloadUnset = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {9000: {mode: DISABLE}}`
)

// chainShape summarises a filter chain: its transport protocol match,
// whether it terminates mTLS, and its HCM's XFCC mode.
type chainShape struct {
	Transport string
	MTLS      bool
	XFCC      string
}

func shapeOf(t *testing.T, l *listenerv3.Listener) (inspectors []string, chains []chainShape) {
	t.Helper()
	for _, lf := range l.GetListenerFilters() {
		inspectors = append(inspectors, lf.GetName())
	}
	for _, fc := range l.GetFilterChains() {
		cs := chainShape{Transport: fc.GetFilterChainMatch().GetTransportProtocol()}
		if ts := fc.GetTransportSocket(); ts != nil {
			dt := unmarshalAny(t, ts.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
			cs.MTLS = dt.GetRequireClientCertificate().GetValue() &&
				dt.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() == "default" &&
				dt.GetCommonTlsContext().GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() == "ROOTCA"
		}
		if h := chainHCM(t, fc); h != nil {
			cs.XFCC = h.GetForwardClientCertDetails().String()
		}
		chains = append(chains, cs)
	}
	return inspectors, chains
}

func TestPeerAuthenticationChains(t *testing.T) {
	tlsChain := chainShape{Transport: "tls", MTLS: true, XFCC: "APPEND_FORWARD"}
	rawChain := chainShape{Transport: "raw_buffer", XFCC: "SANITIZE_SET"}
	plain := chainShape{XFCC: "SANITIZE_SET"}
	inspect := []string{nameTLSInspector}
	cases := []struct {
		name       string
		policies   string
		port       string
		inspectors []string
		chains     []chainShape
	}{
		{name: "default is permissive", port: "8080", inspectors: inspect, chains: []chainShape{tlsChain, rawChain}},
		{name: "mesh strict", policies: paMeshStrict, port: "8080", inspectors: inspect, chains: []chainShape{tlsChain}},
		{name: "namespace disable beats mesh strict", policies: docs(paMeshStrict, paNsDisable), port: "8080", chains: []chainShape{plain}},
		{name: "workload strict", policies: paWorkloadPort, port: "8080", inspectors: inspect, chains: []chainShape{tlsChain}},
		{name: "port level permissive on tcp", policies: paWorkloadPort, port: "9000", inspectors: inspect,
			chains: []chainShape{{Transport: "tls", MTLS: true}, {Transport: "raw_buffer"}}},
		{name: "unset workload mode inherits the mesh", policies: docs(paMeshStrict, paWorkloadUnset), port: "8080", inspectors: inspect, chains: []chainShape{tlsChain}},
		{name: "port level disable", policies: docs(paMeshStrict, paWorkloadUnset), port: "9000", chains: []chainShape{{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Translate(secSnapshot(t, tc.policies, nil), webProxy())
			validateAll(t, res)
			l := res.Listeners["inbound_127.0.8.1_"+tc.port].(*listenerv3.Listener)
			inspectors, chains := shapeOf(t, l)
			if diff := cmp.Diff(tc.inspectors, inspectors); diff != "" {
				t.Errorf("listener filters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.chains, chains); diff != "" {
				t.Errorf("filter chains (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInboundMTLSContext(t *testing.T) {
	res := Translate(secSnapshot(t, paMeshStrict, nil), webProxy())
	l := res.Listeners["inbound_127.0.8.1_8080"].(*listenerv3.Listener)
	got := unmarshalAny(t, l.GetFilterChains()[0].GetTransportSocket().GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
	want := &tlsv3.DownstreamTlsContext{CommonTlsContext: meshCommonTLS(nil, []string{"h2", "http/1.1"})}
	want.RequireClientCertificate = got.RequireClientCertificate
	if !got.GetRequireClientCertificate().GetValue() {
		t.Error("require_client_certificate is not set")
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("DownstreamTlsContext (-want +got):\n%s", diff)
	}
	h := chainHCM(t, l.GetFilterChains()[0])
	if !h.GetSetCurrentClientCertDetails().GetUri() {
		t.Error("mTLS chain does not set the current client certificate's URI in XFCC")
	}
}

// upstream summarises a cluster's client-side TLS.
type upstream struct {
	Matches []string // transport_socket_matches names
	TLS     bool     // a plain transport_socket with TLS
	SNI     string
	SANs    []string
	ALPN    []string
}

func upstreamOf(t *testing.T, c *clusterv3.Cluster) upstream {
	t.Helper()
	var u upstream
	ts := c.GetTransportSocket()
	for _, m := range c.GetTransportSocketMatches() {
		u.Matches = append(u.Matches, m.GetName())
		if m.GetName() == tlsMatchIstio {
			ts = m.GetTransportSocket()
		}
	}
	u.TLS = c.GetTransportSocket() != nil
	if ts == nil {
		return u
	}
	ut := unmarshalAny(t, ts.GetTypedConfig(), &tlsv3.UpstreamTlsContext{})
	u.SNI = ut.GetSni()
	u.ALPN = ut.GetCommonTlsContext().GetAlpnProtocols()
	for _, m := range ut.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		u.SANs = append(u.SANs, m.GetMatcher().GetExact())
	}
	return u
}

func TestUpstreamMTLS(t *testing.T) {
	sans := []string{"spiffe://cluster.local/ns/app/sa/default", "spiffe://cluster.local/ns/app/sa/web"}
	auto := upstream{Matches: []string{tlsMatchIstio, tlsMatchDisabled}, SNI: "outbound_.8080_._.web.app.svc.cluster.local",
		SANs: sans, ALPN: alpnMeshH11}
	drMutual := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: app}
spec:
  host: web.app.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets: [{name: v1, labels: {version: v1}}]`
	drSubsetMutual := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: app}
spec:
  host: web.app.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: custom.sni}}}]`
	drDisable := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: app}
spec: {host: web.app.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}`
	cases := []struct {
		name, policies, cluster string
		want                    upstream
	}{
		{name: "auto mTLS", cluster: "outbound|8080||web.app.svc.cluster.local", want: auto},
		{name: "auto mTLS tcp alpn", cluster: "outbound|9000||web.app.svc.cluster.local",
			want: upstream{Matches: auto.Matches, SNI: "outbound_.9000_._.web.app.svc.cluster.local", SANs: sans, ALPN: alpnMeshTCP}},
		{name: "server namespace disables mTLS", policies: paNsDisable, cluster: "outbound|8080||web.app.svc.cluster.local", want: upstream{}},
		{name: "istio mutual", policies: drMutual, cluster: "outbound|8080||web.app.svc.cluster.local",
			want: upstream{TLS: true, SNI: auto.SNI, SANs: sans, ALPN: alpnMeshH11}},
		{name: "istio mutual inherited by subset", policies: drMutual, cluster: "outbound|8080|v1|web.app.svc.cluster.local",
			want: upstream{TLS: true, SNI: "outbound_.8080_.v1_.web.app.svc.cluster.local", SANs: sans, ALPN: alpnMeshH11}},
		{name: "istio mutual on a subset only", policies: drSubsetMutual, cluster: "outbound|8080|v1|web.app.svc.cluster.local",
			want: upstream{TLS: true, SNI: "custom.sni", SANs: sans, ALPN: alpnMeshH11}},
		{name: "other subsets keep auto mTLS", policies: drSubsetMutual, cluster: "outbound|8080||web.app.svc.cluster.local", want: auto},
		{name: "tls disable in a destination rule", policies: drDisable, cluster: "outbound|8080||web.app.svc.cluster.local", want: upstream{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Translate(secSnapshot(t, tc.policies, nil), clientProxy())
			validateAll(t, res)
			c, ok := res.Clusters[tc.cluster].(*clusterv3.Cluster)
			if !ok {
				t.Fatalf("no cluster %s; have %v", tc.cluster, sortedKeys(res.Clusters))
			}
			if diff := cmp.Diff(tc.want, upstreamOf(t, c)); diff != "" {
				t.Errorf("upstream TLS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpointTLSModeMetadata(t *testing.T) {
	res := Translate(secSnapshot(t, "", nil), clientProxy())
	cla := res.Endpoints["outbound|8080||web.app.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment)
	got := map[string]string{}
	for _, loc := range cla.GetEndpoints() {
		for _, ep := range loc.GetLbEndpoints() {
			addr := ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
			got[addr] = ep.GetMetadata().GetFilterMetadata()[transportSocketMeta].GetFields()["tlsMode"].GetStringValue()
		}
	}
	want := map[string]string{"127.0.8.1": "istio", "127.0.8.3": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tlsMode metadata by endpoint (-want +got):\n%s", diff)
	}
}

func TestPathNormalizationAndFilterOrder(t *testing.T) {
	cases := []struct {
		name  string
		pn    snapshot.PathNormalization
		merge bool
		esc   hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
		norm  bool
	}{
		{name: "base", pn: snapshot.PathNormalizationBase, norm: true},
		{name: "none", pn: snapshot.PathNormalizationNone},
		{name: "merge slashes", pn: snapshot.PathNormalizationMergeSlashes, norm: true, merge: true},
		{name: "decode and merge slashes", pn: snapshot.PathNormalizationDecodeAndMergeSlashes, norm: true, merge: true,
			esc: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD},
	}
	policies := docs(reqAuthnA, ap("app", "p", "rules: [{}]"), ap("app", "d", "action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := secSnapshot(t, policies, func(m *snapshot.Mesh) { m.PathNormalization = tc.pn })
			for _, p := range []Proxy{webProxy(), clientProxy()} {
				res := Translate(snap, p)
				for _, name := range sortedKeys(res.Listeners) {
					l := res.Listeners[name].(*listenerv3.Listener)
					for _, fc := range l.GetFilterChains() {
						h := chainHCM(t, fc)
						if h == nil {
							continue
						}
						if h.GetNormalizePath().GetValue() != tc.norm || h.GetMergeSlashes() != tc.merge || h.GetPathWithEscapedSlashesAction() != tc.esc {
							t.Errorf("%s %s: normalize_path %v merge_slashes %v escaped slashes %v", p.Name, name,
								h.GetNormalizePath().GetValue(), h.GetMergeSlashes(), h.GetPathWithEscapedSlashesAction())
						}
					}
				}
			}
		})
	}
	t.Run("filter order", func(t *testing.T) {
		res := Translate(secSnapshot(t, policies, nil), webProxy())
		h := chainHCM(t, res.Listeners["inbound_127.0.8.1_8080"].(*listenerv3.Listener).GetFilterChains()[0])
		var names []string
		for _, f := range h.GetHttpFilters() {
			names = append(names, f.GetName())
		}
		want := []string{nameJWTAuthn, nameRBACHTTP, nameRBACHTTP}
		if len(names) < 4 || !slices.Equal(names[:3], want) || names[len(names)-1] != nameRouter {
			t.Errorf("http filters = %v, want %v first and the router last", names, want)
		}
	})
}

func TestJWTAuthnConfig(t *testing.T) {
	ra := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: app}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [web]
    jwksUri: https://issuer.example:8443/jwks
    fromHeaders: [{name: x-jwt, prefix: "Token "}]
    fromParams: [tok]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
    forwardOriginalToken: true
    timeout: 2s
  - issuer: local
    jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'`
	res := Translate(secSnapshot(t, ra, nil), webProxy())
	validateAll(t, res)
	h := chainHCM(t, res.Listeners["inbound_127.0.8.1_8080"].(*listenerv3.Listener).GetFilterChains()[0])
	got := unmarshalAny(t, h.GetHttpFilters()[0].GetTypedConfig(), &jwtv3.JwtAuthentication{})
	remote := got.GetProviders()["origins-0"]
	want := &jwtv3.JwtProvider{
		Issuer: "https://issuer.example", Audiences: []string{"web"}, Forward: true,
		ForwardPayloadHeader: "x-jwt-payload", PayloadInMetadata: "https://issuer.example",
		FromHeaders: []*jwtv3.JwtHeader{{Name: "x-jwt", ValuePrefix: "Token "}}, FromParams: []string{"tok"}, FromCookies: []string{"session"},
		ClaimToHeaders: []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}},
	}
	want.JwksSourceSpecifier = remote.GetJwksSourceSpecifier()
	if diff := cmp.Diff(want, remote, protocmp.Transform()); diff != "" {
		t.Errorf("provider (-want +got):\n%s", diff)
	}
	rj := remote.GetRemoteJwks()
	if rj.GetHttpUri().GetUri() != "https://issuer.example:8443/jwks" || rj.GetHttpUri().GetCluster() != "outbound|8443||issuer.example" ||
		rj.GetHttpUri().GetTimeout().AsDuration().String() != "2s" || rj.GetAsyncFetch() == nil || rj.GetCacheDuration() == nil {
		t.Errorf("remote_jwks = %v", rj)
	}
	local := got.GetProviders()["origins-1"]
	if local.GetLocalJwks().GetInlineString() == "" || local.GetFromHeaders()[0].GetName() != "Authorization" || local.GetFromParams()[0] != "access_token" {
		t.Errorf("local provider = %v", local)
	}
	// Missing tokens pass, bad tokens fail: requires_any [providers..., allow_missing].
	reqs := got.GetRules()[0].GetRequires().GetRequiresAny().GetRequirements()
	if len(reqs) != 3 || reqs[0].GetProviderName() != "origins-0" || reqs[1].GetProviderName() != "origins-1" || reqs[2].GetAllowMissing() == nil {
		t.Errorf("requirement = %v", got.GetRules()[0])
	}
}

func TestGatewaySecurity(t *testing.T) {
	gw := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8088, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http: [{route: [{destination: {host: web.app.svc.cluster.local, port: {number: 8080}}}]}]
---
` + ap("istio-system", "gw-deny", "selector: {matchLabels: {istio: ingressgateway}}\naction: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]")
	p := Proxy{ID: "router~127.0.8.9~ingress.istio-system~istio-system.svc.cluster.local", Type: Router, Namespace: "istio-system", Name: "ingress", Address: "127.0.8.9"}
	res := Translate(secSnapshot(t, gw, nil), p)
	validateAll(t, res)
	l, ok := res.Listeners["127.0.8.9_8088"].(*listenerv3.Listener)
	if !ok {
		t.Fatalf("no gateway listener; have %v", sortedKeys(res.Listeners))
	}
	h := chainHCM(t, l.GetFilterChains()[0])
	if h.GetForwardClientCertDetails() != hcmv3.HttpConnectionManager_SANITIZE_SET {
		t.Errorf("gateway XFCC = %v, want SANITIZE_SET", h.GetForwardClientCertDetails())
	}
	if h.GetHttpFilters()[0].GetName() != nameRBACHTTP {
		t.Errorf("gateway http filters start with %s, want the DENY rbac filter", h.GetHttpFilters()[0].GetName())
	}
	// The gateway originates mTLS to web like any sidecar.
	c := res.Clusters["outbound|8080||web.app.svc.cluster.local"].(*clusterv3.Cluster)
	if len(c.GetTransportSocketMatches()) != 2 {
		t.Errorf("gateway cluster has no auto mTLS")
	}
}
