package httpproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/jwt"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// filterConfig is a config whose listener runs filters before routing to
// an echo backend; every path routes to cluster "c".
func filterConfig(t testing.TB, l func(*runtime.HTTPListener), route func(*runtime.Route)) *runtime.Config {
	t.Helper()
	rt := &runtime.Route{Name: "r", Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true}, Forward: fwd("c")}
	if route != nil {
		route(rt)
	}
	cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, backend(t, echo("c")))},
		&runtime.VirtualHost{Name: "vh", Domains: []string{"*"}, Routes: []*runtime.Route{rt}})
	if l != nil {
		l(cfg.Listeners[0].HTTP)
	}
	return cfg
}

// result is one request through a handler.
type result struct {
	code   int
	body   string
	header http.Header
	flags  string
	up     *seen // what the upstream saw; nil when not proxied
}

func do(t testing.TB, h *Handler, flags *string, r *http.Request) result {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	flagsMu.Lock()
	res := result{code: w.Code, body: w.Body.String(), header: w.Header(), flags: *flags}
	flagsMu.Unlock()
	if w.Header().Get("X-Backend") != "" {
		s := decode(t, strings.NewReader(res.body))
		res.up = &s
	}
	return res
}

// flagsMu guards the flags handlerWith records: requests may finish
// concurrently (TestFaultDelayDoesNotBlockOthers).
var flagsMu sync.Mutex

func handlerWith(t testing.TB, cfg *runtime.Config, cache *jwt.Cache) (*Handler, *string) {
	flags := new(string)
	h := newHandler(t, cfg, Options{JWKS: cache, OnDone: func(_ *http.Request, info *RequestInfo) {
		flagsMu.Lock()
		*flags = info.Flags
		flagsMu.Unlock()
	}})
	return h, flags
}

func mustPolicy(t testing.TB, r *rbacv3.RBAC) *authz.Policy {
	t.Helper()
	p, err := authz.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pathPerm(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}

var anyID = &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}

// denyAdmin is Istio's DENY for paths ["/admin", "/admin/*"].
func denyAdmin(t testing.TB) *runtime.RBACFilter {
	return &runtime.RBACFilter{Rules: mustPolicy(t, &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[default]-policy[deny-admin]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
				pathPerm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/admin"}}),
				pathPerm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/admin/"}}),
			}}}}},
			Principals: []*rbacv3.Principal{anyID},
		},
	}})}
}

// TestRBACNoBypass sends the bypass paths of issue 4 point 9 through a
// DENY on /admin under Istio's DECODE_AND_MERGE_SLASHES normalization.
func TestRBACNoBypass(t *testing.T) {
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRBAC, RBAC: denyAdmin(t)}}
		l.Paths = runtime.PathNormalization{Normalize: true, MergeSlashes: true, EscapedSlash: runtime.EscapedSlashUnescapeForward}
	}, nil)
	h, flags := handlerWith(t, cfg, nil)
	tests := []struct {
		path string
		code int
	}{
		{"/admin", 403},
		{"/admin/../admin", 403},
		{"/public/../admin", 403},
		{"//admin", 403},
		{"/%61dmin", 403},
		{"/%2E%2E/admin", 403},
		{"/admin%2F", 403},
		{"/admin%2fusers", 403},
		{"/admin/./x", 403},
		{"/admin?x=1", 403},
		{"/public", 200},
		{"/administrator", 200},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews"+tc.path, nil))
			if res.code != tc.code {
				t.Fatalf("GET %s = %d %q, want %d", tc.path, res.code, res.body, tc.code)
			}
			if tc.code == 403 && res.body != "RBAC: access denied" {
				t.Fatalf("body = %q", res.body)
			}
		})
	}
}

func TestEscapedSlashActions(t *testing.T) {
	tests := []struct {
		name   string
		action runtime.EscapedSlashAction
		code   int
		path   string // upstream's raw or decoded path
		loc    string
	}{
		{"keep", runtime.EscapedSlashKeep, 200, "/a%2Fb", ""},
		{"reject", runtime.EscapedSlashReject, 400, "", ""},
		{"redirect", runtime.EscapedSlashUnescapeRedirect, 307, "", "/a/b?q=1"},
		{"forward", runtime.EscapedSlashUnescapeForward, 200, "/a/b", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filterConfig(t, func(l *runtime.HTTPListener) { l.Paths.EscapedSlash = tc.action }, nil)
			h, flags := handlerWith(t, cfg, nil)
			res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews/a%2Fb?q=1", nil))
			if res.code != tc.code {
				t.Fatalf("code = %d, want %d", res.code, tc.code)
			}
			if tc.loc != "" && res.header.Get("Location") != tc.loc {
				t.Fatalf("Location = %q, want %q", res.header.Get("Location"), tc.loc)
			}
			if res.up != nil {
				got := res.up.Path
				if res.up.RawPath != "" {
					got = res.up.RawPath
				}
				if got != tc.path {
					t.Fatalf("upstream path = %q, want %q", got, tc.path)
				}
			}
		})
	}
}

func TestNormalizePath(t *testing.T) {
	all := runtime.PathNormalization{Normalize: true, MergeSlashes: true}
	tests := []struct{ in, want string }{
		{"/a/b/../c", "/a/c"},
		{"/a/./b/.", "/a/b/"},
		{"/../../a", "/a"},
		{"/a/..", "/"},
		{"//a///b", "/a/b"},
		{"/%61%62c", "/abc"},
		{"/a%2fb", "/a%2Fb"},
		{"/a%20b", "/a%20B"[:0] + "/a%20b"},
		{"/a\\..\\b", "/b"},
		{"*", "*"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got, _ := normalizePath(tc.in, all); got != tc.want {
				t.Fatalf("normalizePath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/admin/../admin", "//admin", "/%61dmin", "/admin%2F", "/a/./b/../../c"} {
		f.Add(s)
	}
	o := runtime.PathNormalization{Normalize: true, MergeSlashes: true, EscapedSlash: runtime.EscapedSlashUnescapeForward}
	f.Fuzz(func(t *testing.T, p string) {
		if p == "" || p[0] != '/' {
			return
		}
		got, _ := normalizePath(p, o)
		if got == "" || got[0] != '/' {
			t.Fatalf("normalizePath(%q) = %q: not absolute", p, got)
		}
		if strings.Contains(got, "//") || strings.Contains(got, "/../") || strings.HasSuffix(got, "/..") {
			t.Fatalf("normalizePath(%q) = %q: not normal", p, got)
		}
		if again, _ := normalizePath(got, o); again != got {
			t.Fatalf("not idempotent: %q → %q → %q", p, got, again)
		}
	})
}

func TestFault(t *testing.T) {
	grpcUnavailable := uint32(14)
	tests := []struct {
		name    string
		fault   *runtime.Fault
		ct      string
		code    int
		flags   string
		grpc    string
		minTime time.Duration
	}{
		{"abort 503", &runtime.Fault{AbortStatus: 503, AbortPercent: runtime.PercentMillion}, "", 503, "FI", "", 0},
		{"abort 0%", &runtime.Fault{AbortStatus: 503, AbortPercent: 0}, "", 200, "", "", 0},
		{"abort grpc", &runtime.Fault{AbortGRPC: &grpcUnavailable, AbortPercent: runtime.PercentMillion}, "application/grpc", 200, "FI", "14", 0},
		{"delay", &runtime.Fault{Delay: 50 * time.Millisecond, DelayPercent: runtime.PercentMillion}, "", 200, "DI", "", 50 * time.Millisecond},
		{"delay and abort", &runtime.Fault{Delay: 20 * time.Millisecond, DelayPercent: runtime.PercentMillion,
			AbortStatus: 418, AbortPercent: runtime.PercentMillion}, "", 418, "DI,FI", "", 20 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// As Istio: an empty fault filter in the chain, the fault on the route.
			cfg := filterConfig(t, func(l *runtime.HTTPListener) {
				l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterFault, Fault: &runtime.Fault{}}}
			}, func(r *runtime.Route) {
				r.PerFilter = map[string]*runtime.FilterOverride{runtime.FilterFault: {Fault: tc.fault}}
			})
			h, flags := handlerWith(t, cfg, nil)
			req := httptest.NewRequest("GET", "http://reviews/", nil)
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			start := time.Now()
			res := do(t, h, flags, req)
			if res.code != tc.code || res.flags != tc.flags {
				t.Fatalf("got %d flags %q, want %d %q", res.code, res.flags, tc.code, tc.flags)
			}
			if tc.grpc != "" && res.header.Get("Grpc-Status") != tc.grpc {
				t.Fatalf("grpc-status = %q, want %q", res.header.Get("Grpc-Status"), tc.grpc)
			}
			if d := time.Since(start); d < tc.minTime {
				t.Fatalf("took %v, want at least %v", d, tc.minTime)
			}
		})
	}
}

// TestFaultDelayDoesNotBlockOthers holds one request in a long delay on one
// route while another route answers at once.
func TestFaultDelayDoesNotBlockOthers(t *testing.T) {
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterFault, Fault: &runtime.Fault{}}}
	}, func(r *runtime.Route) {
		r.Match = runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/slow", CaseSensitive: true}
		r.PerFilter = map[string]*runtime.FilterOverride{runtime.FilterFault: {Fault: &runtime.Fault{Delay: 10 * time.Second, DelayPercent: runtime.PercentMillion}}}
	})
	vh := cfg.Routes["rt"].VirtualHosts[0]
	vh.Routes = append(vh.Routes, &runtime.Route{Name: "fast", Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true}, Forward: fwd("c")})
	h, _ := handlerWith(t, cfg, nil)
	url := serve(t, h)
	slowDone := make(chan struct{})
	req, _ := http.NewRequest("GET", url+"/slow", nil)
	ctx, cancel := contextWithCancel()
	go func() {
		defer close(slowDone)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.InFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	resp, err := http.Get(url + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fast request took %v behind a delayed one", d)
	}
	cancel()
	<-slowDone
	http.DefaultClient.CloseIdleConnections()
}

func TestCORS(t *testing.T) {
	policy := &runtime.CORSPolicy{
		AllowOrigins: []runtime.StringMatch{{Kind: runtime.MatchExact, Value: "https://app.example"}},
		AllowMethods: "GET,POST", AllowHeaders: "x-token", ExposeHeaders: "x-trace", MaxAge: "600",
		AllowCredentials: true,
	}
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterCORS, CORS: &runtime.CORSFilter{}}}
	}, nil)
	cfg.Routes["rt"].VirtualHosts[0].PerFilter = map[string]*runtime.FilterOverride{runtime.FilterCORS: {CORS: policy}}
	h, flags := handlerWith(t, cfg, nil)
	tests := []struct {
		name, method, origin string
		preflight            bool
		code                 int
		headers              map[string]string
		proxied              bool
	}{
		{"preflight allowed", "OPTIONS", "https://app.example", true, 200, map[string]string{
			"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "GET,POST",
			"Access-Control-Allow-Headers": "x-token", "Access-Control-Max-Age": "600", "Access-Control-Allow-Credentials": "true"}, false},
		{"preflight other origin forwarded", "OPTIONS", "https://evil.example", true, 200, map[string]string{"Access-Control-Allow-Origin": ""}, true},
		{"simple request", "GET", "https://app.example", false, 200, map[string]string{
			"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Expose-Headers": "x-trace"}, true},
		{"simple request other origin", "GET", "https://evil.example", false, 200, map[string]string{"Access-Control-Allow-Origin": ""}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://reviews/", nil)
			req.Header.Set("Origin", tc.origin)
			if tc.preflight {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			res := do(t, h, flags, req)
			if res.code != tc.code || (res.up != nil) != tc.proxied {
				t.Fatalf("got %d proxied %v, want %d %v", res.code, res.up != nil, tc.code, tc.proxied)
			}
			for k, v := range tc.headers {
				if got := res.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestXFCC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action runtime.XFCCAction
		want   string
	}{
		{"sanitize", runtime.XFCCSanitize, ""},
		{"forward only without mtls", runtime.XFCCForwardOnly, ""},
		{"append forward without mtls", runtime.XFCCAppendForward, ""},
		{"always forward only", runtime.XFCCAlwaysForwardOnly, "By=spiffe://evil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filterConfig(t, func(l *runtime.HTTPListener) { l.XFCC.Action = tc.action }, nil)
			h, flags := handlerWith(t, cfg, nil)
			req := httptest.NewRequest("GET", "http://reviews/", nil)
			req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://evil")
			res := do(t, h, flags, req)
			if got := res.up.Header.Get("X-Forwarded-Client-Cert"); got != tc.want {
				t.Fatalf("upstream xfcc = %q, want %q", got, tc.want)
			}
		})
	}
}

// jwtFixture is a signing key, its JWKS and a token factory.
type jwtFixture struct {
	key  *ecdsa.PrivateKey
	jwks []byte
}

func newJWTFixture(t testing.TB) *jwtFixture {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	return &jwtFixture{key: k, jwks: b}
}

func (f *jwtFixture) token(t testing.TB, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// istioJWT is jwt_authn as Istio emits it for one RequestAuthentication
// rule: requires_any [provider, allow_missing], payload in metadata.
func istioJWT(p *runtime.JWTProvider) *runtime.JWTAuthn {
	p.PayloadInMetadata = "payload"
	return &runtime.JWTAuthn{
		Providers: map[string]*runtime.JWTProvider{"origins-0": p},
		Rules: []runtime.JWTRule{{
			Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true},
			Requirement: &runtime.JWTRequirement{Kind: runtime.JWTRequiresAny, Children: []*runtime.JWTRequirement{
				{Kind: runtime.JWTProviderName, Provider: "origins-0"}, {Kind: runtime.JWTAllowMissing},
			}},
		}},
		BypassCORSPreflight: true,
	}
}

// requireIssuer is Istio's ALLOW with requestPrincipals ["https://issuer/*"].
func requireIssuer(t testing.TB) *runtime.RBACFilter {
	return &runtime.RBACFilter{Rules: mustPolicy(t, &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"require-jwt": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
				Filter: runtime.FilterJWT,
				Path: []*matcherv3.MetadataMatcher_PathSegment{
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "payload"}},
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "iss"}}},
				Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://issuer"}}}},
			}}}},
		},
	}})}
}

func TestJWTAuthn(t *testing.T) {
	fx := newJWTFixture(t)
	now := time.Now()
	claims := func(mut func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://issuer", "sub": "alice", "aud": "bookinfo", "exp": now.Add(time.Hour).Unix(), "group": "admins"}
		if mut != nil {
			mut(c)
		}
		return c
	}
	provider := func() *runtime.JWTProvider {
		return &runtime.JWTProvider{
			Issuer: "https://issuer", Audiences: []string{"bookinfo"}, LocalJWKS: fx.jwks,
			ForwardPayloadHeader: "X-Jwt-Payload", ClaimToHeaders: []runtime.JWTClaimHeader{{Header: "X-Group", Claim: "group"}},
		}
	}
	tests := []struct {
		name     string
		rbac     bool // also require a verified issuer
		token    string
		where    string // "header" (default), "param"
		code     int
		body     string
		upstream func(t *testing.T, s *seen)
	}{
		{"valid", false, fx.token(t, claims(nil)), "", 200, "", func(t *testing.T, s *seen) {
			if s.Header.Get("Authorization") != "" {
				t.Error("token forwarded though forward is false")
			}
			if s.Header.Get("X-Group") != "admins" || s.Header.Get("X-Jwt-Payload") == "" {
				t.Errorf("outputs missing: %v", s.Header)
			}
		}},
		{"valid in param", false, fx.token(t, claims(nil)), "param", 200, "", func(t *testing.T, s *seen) {
			if strings.Contains(s.Query, "access_token") {
				t.Errorf("token param forwarded: %q", s.Query)
			}
		}},
		{"missing passes authn", false, "", "", 200, "", nil},
		{"missing denied by authz", true, "", "", 403, "RBAC: access denied", nil},
		{"valid allowed by authz", true, fx.token(t, claims(nil)), "", 200, "", nil},
		{"expired", false, fx.token(t, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), "", 401, "Jwt is expired", nil},
		{"future nbf", false, fx.token(t, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), "", 401, "Jwt not yet valid", nil},
		{"wrong issuer", false, fx.token(t, claims(func(c map[string]any) { c["iss"] = "https://evil" })), "", 401, "Jwt issuer is not configured", nil},
		{"wrong audience", false, fx.token(t, claims(func(c map[string]any) { c["aud"] = "other" })), "", 403, "Audiences in Jwt are not allowed", nil},
		{"bad signature", false, newJWTFixture(t).token(t, claims(nil)), "", 401, "Jwt verification fails", nil},
		{"alg none", false, "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3VlciJ9.", "", 401, "Jwt header [alg] is not supported", nil},
		{"garbage", false, "not-a-jwt", "", 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filterConfig(t, func(l *runtime.HTTPListener) {
				l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterJWT, JWT: istioJWT(provider())}}
				if tc.rbac {
					l.Filters = append(l.Filters, &runtime.HTTPFilter{Name: runtime.FilterRBAC, RBAC: requireIssuer(t)})
				}
			}, nil)
			h, flags := handlerWith(t, cfg, nil)
			url := "http://reviews/p"
			if tc.where == "param" {
				url += "?access_token=" + tc.token + "&x=1"
			}
			req := httptest.NewRequest("GET", url, nil)
			if tc.token != "" && tc.where == "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res := do(t, h, flags, req)
			if res.code != tc.code || (tc.body != "" && res.body != tc.body) {
				t.Fatalf("got %d %q, want %d %q", res.code, res.body, tc.code, tc.body)
			}
			if tc.code == 401 && !strings.HasPrefix(res.header.Get("Www-Authenticate"), "Bearer realm=") {
				t.Fatalf("www-authenticate = %q", res.header.Get("Www-Authenticate"))
			}
			if tc.upstream != nil {
				tc.upstream(t, res.up)
			}
		})
	}
}

// TestJWTRemoteJWKSFailClosed fetches keys from a loopback JWKS server,
// then takes it away: a token needing it is refused, a request without a
// token still passes authentication.
func TestJWTRemoteJWKSFailClosed(t *testing.T) {
	fx := newJWTFixture(t)
	var up atomic.Bool
	up.Store(true)
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", 503)
			return
		}
		_, _ = w.Write(fx.jwks)
	}))
	defer jwksSrv.Close()
	clock := time.Now()
	var mu atomic.Int64
	mu.Store(clock.UnixNano())
	cache := jwt.NewCache(jwt.CacheOptions{Now: func() time.Time { return time.Unix(0, mu.Load()) }})
	defer cache.Close()
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterJWT, JWT: istioJWT(&runtime.JWTProvider{
			Issuer: "https://issuer", Remote: &runtime.JWTRemote{URI: jwksSrv.URL, CacheDuration: time.Minute}})}}
	}, nil)
	h, flags := handlerWith(t, cfg, cache)
	tok := fx.token(t, map[string]any{"iss": "https://issuer", "sub": "bob", "exp": clock.Add(time.Hour).Unix()})
	get := func(withToken bool) result {
		req := httptest.NewRequest("GET", "http://reviews/", nil)
		if withToken {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return do(t, h, flags, req)
	}
	if res := get(true); res.code != 200 {
		t.Fatalf("with JWKS up: %d %q", res.code, res.body)
	}
	up.Store(false)
	mu.Add(int64(2 * time.Minute))
	if res := get(true); res.code != 401 || res.body != "Jwks remote fetch is failed" {
		t.Fatalf("with JWKS down: %d %q, want 401 fail closed", res.code, res.body)
	}
	if res := get(false); res.code != 200 {
		t.Fatalf("no token with JWKS down: %d %q", res.code, res.body)
	}
}

// TestExtAuthzCustom is Istio's CUSTOM action: a shadow RBAC policy marks
// requests for /secure, and ext_authz (HTTP) runs only for those.
func TestExtAuthzCustom(t *testing.T) {
	var checks atomic.Int32
	authzSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		if r.Header.Get("X-Allow") == "yes" {
			w.Header().Set("X-Authz-User", "alice")
			return
		}
		w.Header().Set("X-Denied-By", "ext")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "denied by ext authz")
	}))
	defer authzSrv.Close()
	shadow := mustPolicy(t, &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"istio-ext-authz-ns[default]-policy[ext]-rule[0]": {
			Permissions: []*rbacv3.Permission{pathPerm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/secure"}})},
			Principals:  []*rbacv3.Principal{anyID},
		}}})
	enabled, err := authz.CompileMetadata(&matcherv3.MetadataMatcher{
		Filter: runtime.FilterRBAC,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "istio_ext_authz_shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{
			{Name: runtime.FilterRBAC, RBAC: &runtime.RBACFilter{Shadow: shadow, ShadowStatPrefix: "istio_ext_authz_"}},
			{Name: runtime.FilterExtAuthz, ExtAuthz: &runtime.ExtAuthz{
				EnabledMetadata: enabled,
				AllowedHeaders:  []runtime.StringMatch{{Kind: runtime.MatchExact, Value: "x-allow"}},
				HTTP: &runtime.ExtAuthzHTTP{URI: authzSrv.URL, Timeout: 2 * time.Second,
					AllowedUpstreamHeaders: []runtime.StringMatch{{Kind: runtime.MatchExact, Value: "x-authz-user"}}},
			}},
		}
	}, nil)
	h, flags := handlerWith(t, cfg, nil)
	tests := []struct {
		name, path, allow string
		code              int
		flags             string
		checked           bool
	}{
		{"not covered", "/public", "", 200, "", false},
		{"covered allowed", "/secure/x", "yes", 200, "", true},
		{"covered denied", "/secure/x", "", 403, "UAEX", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := checks.Load()
			req := httptest.NewRequest("GET", "http://reviews"+tc.path, nil)
			if tc.allow != "" {
				req.Header.Set("X-Allow", tc.allow)
			}
			res := do(t, h, flags, req)
			if res.code != tc.code || res.flags != tc.flags || (checks.Load() > before) != tc.checked {
				t.Fatalf("got %d flags %q checked %v, want %d %q %v", res.code, res.flags, checks.Load() > before, tc.code, tc.flags, tc.checked)
			}
			if tc.code == 403 && (res.body != "denied by ext authz" || res.header.Get("X-Denied-By") != "ext") {
				t.Fatalf("denial = %q %v", res.body, res.header)
			}
			if tc.checked && tc.code == 200 && res.up.Header.Get("X-Authz-User") != "alice" {
				t.Fatalf("upstream header from authz missing: %v", res.up.Header)
			}
		})
	}
	// The service unreachable: fail closed with 403, or open when configured.
	for _, allow := range []bool{false, true} {
		cfg := filterConfig(t, func(l *runtime.HTTPListener) {
			l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterExtAuthz, ExtAuthz: &runtime.ExtAuthz{
				FailureModeAllow: allow, HTTP: &runtime.ExtAuthzHTTP{URI: "http://127.0.0.1:1", Timeout: time.Second}}}}
		}, nil)
		h, flags := handlerWith(t, cfg, nil)
		res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews/", nil))
		want := 403
		if allow {
			want = 200
		}
		if res.code != want {
			t.Fatalf("failure_mode_allow=%v: %d, want %d", allow, res.code, want)
		}
	}
}

func TestPerRouteDisable(t *testing.T) {
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRBAC, RBAC: &runtime.RBACFilter{
			Rules: mustPolicy(t, &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW})}}}
	}, func(r *runtime.Route) {
		r.Match = runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/open", CaseSensitive: true}
		r.PerFilter = map[string]*runtime.FilterOverride{runtime.FilterRBAC: {Disabled: true}}
	})
	vh := cfg.Routes["rt"].VirtualHosts[0]
	vh.Routes = append(vh.Routes, &runtime.Route{Name: "rest", Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true}, Forward: fwd("c")})
	h, flags := handlerWith(t, cfg, nil)
	if res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews/open", nil)); res.code != 200 {
		t.Fatalf("/open = %d", res.code)
	}
	if res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews/closed", nil)); res.code != 403 {
		t.Fatalf("/closed = %d", res.code)
	}
}

func BenchmarkRBACFilter(b *testing.B) {
	cfg := filterConfig(b, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRBAC, RBAC: denyAdmin(b)}}
		l.Paths = runtime.PathNormalization{Normalize: true, MergeSlashes: true}
	}, func(r *runtime.Route) {
		r.Forward, r.Direct = nil, &runtime.DirectResponse{Status: 200}
	})
	h, _ := handlerWith(b, cfg, nil)
	req := httptest.NewRequest("GET", "http://reviews/api/v1/items", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkJWTFilter(b *testing.B) {
	fx := newJWTFixture(b)
	cfg := filterConfig(b, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterJWT, JWT: istioJWT(&runtime.JWTProvider{Issuer: "https://issuer", LocalJWKS: fx.jwks, Forward: true})}}
	}, func(r *runtime.Route) {
		r.Forward, r.Direct = nil, &runtime.DirectResponse{Status: 200}
	})
	h, _ := handlerWith(b, cfg, nil)
	tok := fx.token(b, map[string]any{"iss": "https://issuer", "sub": "a", "exp": time.Now().Add(time.Hour).Unix()})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "http://reviews/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
