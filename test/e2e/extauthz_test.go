package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Issue 4 point 8, CUSTOM: AuthorizationPolicy action CUSTOM hands matching
// requests to an external authorizer declared in MeshConfig
// extensionProviders, over HTTP (envoyExtAuthzHttp) and gRPC
// (envoyExtAuthzGrpc, envoy.service.auth.v3.Authorization). The authorizers
// are in-test servers on 127.0.0.1 ephemeral ports, reached through a
// ServiceEntry whose endpoint maps the service port to theirs.

// Headers of the ext_authz conversation: the client asks with
// extAuthzAsk: allow; the authorizer answers with extAuthzResult.
const (
	extAuthzAsk    = "x-ext-authz"
	extAuthzResult = "x-ext-authz-check-result"
	extAuthzHTTPSE = "ext-authz-http.default.svc.cluster.local"
	extAuthzGRPCSE = "ext-authz-grpc.default.svc.cluster.local"
)

// authorizer is the decision both test authorizers make, with a record of
// what they were asked.
type authorizer struct {
	kind string // "http" or "grpc"

	mu         sync.Mutex
	paths      []string // request paths checked
	principals []string // source principals (gRPC only)
}

func (a *authorizer) record(path, principal string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paths = append(a.paths, path)
	if principal != "" {
		a.principals = append(a.principals, principal)
	}
}

func (a *authorizer) seen() (paths, principals []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...), append([]string(nil), a.principals...)
}

// ServeHTTP is Envoy's HTTP ext_authz protocol: 200 allows, with the
// response headers the provider lets upstream; anything else denies, with
// that status, body and the headers the provider lets downstream.
func (a *authorizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.record(r.URL.Path, "")
	if r.Header.Get(extAuthzAsk) == "allow" {
		w.Header().Set(extAuthzResult, "allowed by "+a.kind)
		w.Header().Set("x-ext-authz-not-forwarded", "1") // not in headersToUpstreamOnAllow
		return
	}
	w.Header().Set(extAuthzResult, "denied by "+a.kind)
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "denied by ext_authz "+a.kind)
}

// grpcAuthorizer is envoy.service.auth.v3.Authorization over a.
type grpcAuthorizer struct {
	authv3.UnimplementedAuthorizationServer
	a *authorizer
}

func (g grpcAuthorizer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	g.a.record(h.GetPath(), req.GetAttributes().GetSource().GetPrincipal())
	header := func(v string) []*corev3.HeaderValueOption {
		return []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: extAuthzResult, Value: v}}}
	}
	if h.GetHeaders()[extAuthzAsk] == "allow" {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: header("allowed by grpc")}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Headers: header("denied by grpc"),
			Body: "denied by ext_authz grpc"}}}, nil
}

// startAuthorizers serves the HTTP and gRPC authorizers on ephemeral
// 127.0.0.1 ports and returns their ports.
func startAuthorizers(t *testing.T) (httpA, grpcA *authorizer, httpPort, grpcPort int) {
	t.Helper()
	httpA, grpcA = &authorizer{kind: "http"}, &authorizer{kind: "grpc"}
	hs := httptest.NewServer(httpA)
	t.Cleanup(hs.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, grpcAuthorizer{a: grpcA})
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return httpA, grpcA, hs.Listener.Addr().(*net.TCPAddr).Port, lis.Addr().(*net.TCPAddr).Port
}

// extAuthzMeshConfig declares both providers, as MeshConfig does.
const extAuthzMeshConfig = `extensionProviders:
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: ` + extAuthzHTTPSE + `
    port: 9000
    includeRequestHeadersInCheck: [` + extAuthzAsk + `]
    headersToUpstreamOnAllow: [` + extAuthzResult + `]
    headersToDownstreamOnDeny: [` + extAuthzResult + `]
- name: ext-authz-grpc
  envoyExtAuthzGrpc:
    service: ` + extAuthzGRPCSE + `
    port: 9001
`

// extAuthzServicesYAML puts the authorizers in the registry: plain-text
// services (no sidecar, so no mTLS) on 127.0.0.1.
func extAuthzServicesYAML(httpPort, grpcPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz-http, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz-grpc, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9001, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, extAuthzHTTPSE, httpPort, extAuthzGRPCSE, grpcPort)
}

// customPolicyYAML sends echo's /custom/* to provider.
func customPolicyYAML(provider string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: CUSTOM
  provider: {name: %s}
  rules:
  - to: [{operation: {paths: ["/custom/*"]}}]
`, provider)
}

// extAuthzGet sends GET path through the client sidecar with the
// extAuthzAsk header (none when ask is empty).
func extAuthzGet(c *http.Client, path, ask string) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodGet, echoURL(portHTTP, path), nil)
	if err != nil {
		return nil, "", err
	}
	if ask != "" {
		req.Header.Set(extAuthzAsk, ask)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, string(body), err
}

// TestSecurityExtAuthzCustom: through real proxies, CUSTOM asks the HTTP or
// the gRPC authorizer about /custom/* only; allowed requests reach the app
// with the header the authorizer added, denied ones get the authorizer's
// status, body and header.
func TestSecurityExtAuthzCustom(t *testing.T) {
	httpA, grpcA, httpPort, grpcPort := startAuthorizers(t)
	for _, tc := range []struct {
		provider string
		a        *authorizer
	}{
		{"ext-authz-http", httpA},
		{"ext-authz-grpc", grpcA},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			m := startSecurityMesh(t, securityMeshOptions{
				files: map[string]string{
					"ext-authz-services.yaml": extAuthzServicesYAML(httpPort, grpcPort),
					"ext-authz-policy.yaml":   customPolicyYAML(tc.provider),
				},
				meshConfig: extAuthzMeshConfig,
			})
			c := m.egressClient(t)
			waitFor(t, "the authorizer denies /custom/x without the allow header", readyTimeout, func() error {
				resp, body, err := extAuthzGet(c, "/custom/x", "")
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusForbidden || body != "denied by ext_authz "+tc.a.kind {
					return fmt.Errorf("status %d: %s", resp.StatusCode, tail(body, 200))
				}
				return nil
			}, m.all()...)

			t.Run("allowed request reaches the app with the authorizer's header", func(t *testing.T) {
				r, err := getEchoWith(c, "/custom/allowed", "allow")
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(r.Headers[http.CanonicalHeaderKey(extAuthzResult)], ","); got != "allowed by "+tc.a.kind {
					t.Errorf("app saw %s = %q, want %q (headers %v)", extAuthzResult, got, "allowed by "+tc.a.kind, r.Headers)
				}
				if _, ok := r.Headers["X-Ext-Authz-Not-Forwarded"]; ok {
					t.Errorf("a header outside headersToUpstreamOnAllow reached the app: %v", r.Headers)
				}
			})
			t.Run("denied request gets the authorizer's answer", func(t *testing.T) {
				resp, body, err := extAuthzGet(c, "/custom/denied", "deny")
				if err != nil {
					t.Fatal(err)
				}
				want := "denied by ext_authz " + tc.a.kind
				if resp.StatusCode != http.StatusForbidden || body != want {
					t.Errorf("GET /custom/denied = %d %q, want 403 %q", resp.StatusCode, body, want)
				}
				if got := resp.Header.Get(extAuthzResult); got != "denied by "+tc.a.kind {
					t.Errorf("client saw %s = %q, want %q", extAuthzResult, got, "denied by "+tc.a.kind)
				}
			})
			t.Run("paths outside the CUSTOM rule are not checked", func(t *testing.T) {
				if _, err := getEchoWith(c, "/public", "deny"); err != nil {
					t.Fatal(err)
				}
				paths, principals := tc.a.seen()
				for _, p := range paths {
					if strings.HasPrefix(p, "/public") {
						t.Errorf("the authorizer was asked about %s: %v", p, paths)
					}
				}
				if tc.a.kind == "grpc" {
					// The sidecars speak mTLS: the check names the client's SPIFFE ID.
					for _, p := range principals {
						if p != idDefault {
							t.Errorf("CheckRequest source principal = %q, want %q", p, idDefault)
						}
					}
					if len(principals) == 0 {
						t.Error("no CheckRequest named a source principal")
					}
				}
			})
		})
	}
}

// getEchoWith is getEcho with the extAuthzAsk header.
func getEchoWith(c *http.Client, path, ask string) (echoReply, error) {
	req, err := http.NewRequest(http.MethodGet, echoURL(portHTTP, path), nil)
	if err != nil {
		return echoReply{}, err
	}
	req.Header.Set(extAuthzAsk, ask)
	return doEcho(c, req)
}
