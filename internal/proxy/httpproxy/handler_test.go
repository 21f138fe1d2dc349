package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func routingConfig(t *testing.T) *runtime.Config {
	a := cluster("a", runtime.HTTP1, backend(t, echo("a")))
	b := cluster("b", runtime.HTTP1, backend(t, echo("b")))
	c := cluster("c", runtime.HTTP2, backend(t, echo("c")))
	prefix := func(p string) runtime.RouteMatch {
		return runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: p, CaseSensitive: true}
	}
	exact := func(p string) runtime.RouteMatch {
		return runtime.RouteMatch{PathKind: runtime.PathExact, Path: p, CaseSensitive: true}
	}
	withHeader := func(m runtime.RouteMatch, hm runtime.HeaderMatch) runtime.RouteMatch {
		m.Headers = append(m.Headers, hm)
		return m
	}
	ci := prefix("/CI")
	ci.CaseSensitive = false
	re := runtime.RouteMatch{PathKind: runtime.PathRegex, Regex: regexp.MustCompile(`^(?:/re/[0-9]+)$`)}
	q := prefix("/q")
	q.Query = []runtime.QueryMatch{{Name: "v", Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "2"}}}
	rewrite := fwd("a")
	rewrite.PrefixRewrite = "/new/"
	rewrite.HostRewrite = "rewritten"
	exactRewrite := fwd("a")
	exactRewrite.PrefixRewrite = "/v2"
	regexRewrite := fwd("a")
	regexRewrite.RegexRewrite = &runtime.RegexRewrite{Pattern: regexp.MustCompile(`^/rx/([^/]+)/([^/]+)$`), Template: "/${2}/$$${1}"}
	fullRewrite := fwd("a")
	fullRewrite.RegexRewrite = &runtime.RegexRewrite{Pattern: regexp.MustCompile(`/.*`), Template: "/full"}
	return config([]*runtime.Cluster{a, b, c},
		&runtime.VirtualHost{Name: "reviews", Domains: []string{"reviews", "reviews:9080"}, Routes: []*runtime.Route{
			{Name: "exact", Match: exact("/exact"), Forward: fwd("a")},
			{Name: "ci-prefix", Match: ci, Forward: fwd("b")},
			{Name: "regex", Match: re, Forward: fwd("c")},
			{Name: "method", Match: withHeader(prefix("/m"), runtime.HeaderMatch{Name: ":method", Match: runtime.StringMatch{Value: "POST"}}), Forward: fwd("b")},
			{Name: "present", Match: withHeader(prefix("/h"), runtime.HeaderMatch{Name: "x-user", Match: runtime.StringMatch{Kind: runtime.MatchPresent}}), Forward: fwd("c")},
			{Name: "invert", Match: withHeader(prefix("/inv"), runtime.HeaderMatch{Name: "x-env", Match: runtime.StringMatch{Value: "prod"}, Invert: true}), Forward: fwd("c")},
			{Name: "ignore-case-header", Match: withHeader(prefix("/ic"), runtime.HeaderMatch{Name: "x-env", Match: runtime.StringMatch{Kind: runtime.MatchPrefix, Value: "CAN", IgnoreCase: true}}), Forward: fwd("c")},
			{Name: "query", Match: q, Forward: fwd("c")},
			{Name: "authority", Match: withHeader(prefix("/auth"), runtime.HeaderMatch{Name: ":authority", Match: runtime.StringMatch{Value: "reviews:9080"}}), Forward: fwd("c")},
			{Name: "rewrite", Match: prefix("/old/"), Forward: rewrite,
				RequestHeaders: runtime.HeaderMutation{
					Set: []runtime.Header{{Name: "x-set", Value: "1"}}, Add: []runtime.Header{{Name: "x-add", Value: "2"}}, Remove: []string{"x-remove"},
				},
				ResponseHeaders: runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-resp", Value: "yes"}}, Remove: []string{"x-backend"}},
			},
			{Name: "exact-rewrite", Match: exact("/v1"), Forward: exactRewrite},
			{Name: "regex-rewrite", Match: prefix("/rx/"), Forward: regexRewrite},
			{Name: "full-rewrite", Match: prefix("/full/"), Forward: fullRewrite},
			{Name: "redirect", Match: exact("/redir"), Redirect: &runtime.RedirectAction{Host: "other", Path: "/to"}},
			{Name: "direct", Match: exact("/direct"), Direct: &runtime.DirectResponse{Status: 418, Body: []byte("teapot")}},
			{Name: "missing-cluster", Match: exact("/nc"), Forward: fwd("nope")},
			{Name: "default", Match: prefix("/"), Forward: fwd("a")},
		}},
		&runtime.VirtualHost{Name: "suffix", Domains: []string{"*.example.com"}, Routes: []*runtime.Route{{Name: "suffix", Match: prefix("/"), Forward: fwd("b")}}},
		&runtime.VirtualHost{Name: "longer-suffix", Domains: []string{"*.foo.example.com"}, Routes: []*runtime.Route{{Name: "longer-suffix", Match: prefix("/"), Forward: fwd("c")}}},
		&runtime.VirtualHost{Name: "prefix", Domains: []string{"foo.*"}, Routes: []*runtime.Route{{Name: "prefix", Match: prefix("/"), Forward: fwd("c")}}},
		&runtime.VirtualHost{Name: "star", Domains: []string{"*"}, Routes: []*runtime.Route{{Name: "star", Match: exact("/only"), Forward: fwd("a")}}},
	)
}

// TestRouting is a simulation: a request for host X, path Y reaches route
// R and cluster C, and the upstream sees what Envoy would send.
func TestRouting(t *testing.T) {
	h := newHandler(t, routingConfig(t), Options{})
	type want struct {
		Status   int
		Flags    string
		Route    string
		Backend  string
		Path     string
		Host     string
		Proto    string
		Location string
		Body     string
	}
	tests := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		want    want
	}{
		{"exact domain", "GET", "http://reviews/exact", nil, want{Status: 200, Route: "exact", Backend: "a", Path: "/exact", Host: "reviews"}},
		{"exact domain with port", "GET", "http://reviews:9080/x", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/x", Host: "reviews:9080"}},
		{"domain match is case-insensitive", "GET", "http://REVIEWS/x", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/x", Host: "REVIEWS"}},
		{"exact path does not prefix-match", "GET", "http://reviews/exact/more", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/exact/more", Host: "reviews"}},
		{"case-insensitive prefix", "GET", "http://reviews/ci/x", nil, want{Status: 200, Route: "ci-prefix", Backend: "b", Path: "/ci/x", Host: "reviews"}},
		{"regex full match, h2c upstream", "GET", "http://reviews/re/42", nil, want{Status: 200, Route: "regex", Backend: "c", Path: "/re/42", Host: "reviews", Proto: "HTTP/2.0"}},
		{"regex needs full match", "GET", "http://reviews/re/42x", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/re/42x", Host: "reviews"}},
		{":method match", "POST", "http://reviews/m", nil, want{Status: 200, Route: "method", Backend: "b", Path: "/m", Host: "reviews"}},
		{":method mismatch", "GET", "http://reviews/m", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/m", Host: "reviews"}},
		{"header present", "GET", "http://reviews/h", map[string]string{"X-User": ""}, want{Status: 200, Route: "present", Backend: "c", Path: "/h", Host: "reviews", Proto: "HTTP/2.0"}},
		{"header absent", "GET", "http://reviews/h", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/h", Host: "reviews"}},
		{"inverted match, other value", "GET", "http://reviews/inv", map[string]string{"X-Env": "dev"}, want{Status: 200, Route: "invert", Backend: "c", Path: "/inv", Host: "reviews", Proto: "HTTP/2.0"}},
		{"inverted match, header absent", "GET", "http://reviews/inv", nil, want{Status: 200, Route: "invert", Backend: "c", Path: "/inv", Host: "reviews", Proto: "HTTP/2.0"}},
		{"inverted match, excluded value", "GET", "http://reviews/inv", map[string]string{"X-Env": "prod"}, want{Status: 200, Route: "default", Backend: "a", Path: "/inv", Host: "reviews"}},
		{"ignore-case header prefix", "GET", "http://reviews/ic", map[string]string{"X-Env": "canary-1"}, want{Status: 200, Route: "ignore-case-header", Backend: "c", Path: "/ic", Host: "reviews", Proto: "HTTP/2.0"}},
		{"query match", "GET", "http://reviews/q?v=2", nil, want{Status: 200, Route: "query", Backend: "c", Path: "/q", Host: "reviews", Proto: "HTTP/2.0"}},
		{"query mismatch", "GET", "http://reviews/q?v=3", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/q", Host: "reviews"}},
		{":authority match", "GET", "http://reviews:9080/auth", nil, want{Status: 200, Route: "authority", Backend: "c", Path: "/auth", Host: "reviews:9080", Proto: "HTTP/2.0"}},
		{":authority mismatch", "GET", "http://reviews/auth", nil, want{Status: 200, Route: "default", Backend: "a", Path: "/auth", Host: "reviews"}},
		{"prefix and host rewrite", "GET", "http://reviews/old/p%2Fq", nil, want{Status: 200, Route: "rewrite", Backend: "a", Path: "/new/p/q", Host: "rewritten"}},
		{"prefix rewrite on an exact match replaces the path", "GET", "http://reviews/v1?q=1", nil, want{Status: 200, Route: "exact-rewrite", Backend: "a", Path: "/v2", Host: "reviews"}},
		{"regex rewrite with groups", "GET", "http://reviews/rx/a/b%20c", nil, want{Status: 200, Route: "regex-rewrite", Backend: "a", Path: "/b c/$a", Host: "reviews"}},
		{"regex rewrite without a match keeps the path", "GET", "http://reviews/rx/a/b/c", nil, want{Status: 200, Route: "regex-rewrite", Backend: "a", Path: "/rx/a/b/c", Host: "reviews"}},
		{"regex rewrite of the full path (ReplaceFullPath)", "GET", "http://reviews/full/x/y?k=v", nil, want{Status: 200, Route: "full-rewrite", Backend: "a", Path: "/full", Host: "reviews"}},
		{"redirect", "GET", "http://reviews/redir?x=1", nil, want{Status: 301, Route: "redirect", Location: "http://other/to?x=1"}},
		{"direct response", "GET", "http://reviews/direct", nil, want{Status: 418, Route: "direct", Body: "teapot"}},
		{"unknown cluster", "GET", "http://reviews/nc", nil, want{Status: 503, Route: "missing-cluster", Flags: "NC"}},
		{"suffix wildcard", "GET", "http://bar.example.com/", nil, want{Status: 200, Route: "suffix", Backend: "b", Path: "/", Host: "bar.example.com"}},
		{"longest suffix wins", "GET", "http://x.foo.example.com/", nil, want{Status: 200, Route: "longer-suffix", Backend: "c", Path: "/", Host: "x.foo.example.com", Proto: "HTTP/2.0"}},
		{"suffix before prefix", "GET", "http://foo.example.com/", nil, want{Status: 200, Route: "suffix", Backend: "b", Path: "/", Host: "foo.example.com"}},
		{"prefix wildcard", "GET", "http://foo.bar/", nil, want{Status: 200, Route: "prefix", Backend: "c", Path: "/", Host: "foo.bar", Proto: "HTTP/2.0"}},
		{"wildcard needs one character", "GET", "http://example.com/only", nil, want{Status: 200, Route: "star", Backend: "a", Path: "/only", Host: "example.com"}},
		{"star vhost, no route", "GET", "http://elsewhere/nothing", nil, want{Status: 404, Flags: "NR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var info RequestInfo
			h.onDone = func(_ *http.Request, i *RequestInfo) { info = *i }
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := want{Status: rec.Code, Flags: info.Flags, Route: info.Route, Location: rec.Header().Get("Location")}
			if rec.Header().Get("Content-Type") == "application/json" {
				s := decode(t, rec.Body)
				got.Backend, got.Path, got.Host = s.Backend, s.Path, s.Host
				if s.Proto != "HTTP/1.1" {
					got.Proto = s.Proto
				}
			} else if tt.want.Body != "" {
				got.Body = rec.Body.String()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.method, tt.target, diff)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	h := newHandler(t, routingConfig(t), Options{})
	req := httptest.NewRequest("GET", "http://reviews/old/x", nil)
	req.Header.Set("X-Remove", "gone")
	req.Header.Set("X-Add", "1")
	req.Header.Set("X-Set", "old")
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "secret")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	s := decode(t, rec.Body)
	got := map[string][]string{}
	for _, k := range []string{"X-Remove", "X-Add", "X-Set", "X-Hop", "Connection", "X-Forwarded-For", "X-Forwarded-Proto", "X-Envoy-Attempt-Count"} {
		got[k] = s.Header[k]
	}
	want := map[string][]string{
		"X-Remove": nil, "X-Add": {"1", "2"}, "X-Set": {"1"}, "X-Hop": nil, "Connection": nil,
		"X-Forwarded-For": {"10.0.0.1"}, "X-Forwarded-Proto": {"http"}, "X-Envoy-Attempt-Count": {"1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upstream request headers (-want +got):\n%s", diff)
	}
	if id := s.Header.Get("X-Request-Id"); len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("generated x-request-id = %q, want a UUID", id)
	}
	if got, want := rec.Header().Get("X-Resp"), "yes"; got != want {
		t.Errorf("response x-resp = %q, want %q", got, want)
	}
	if got := rec.Header().Get("X-Backend"); got != "" {
		t.Errorf("response x-backend = %q, want removed", got)
	}

	req = httptest.NewRequest("GET", "http://reviews/x", nil)
	req.Header.Set("X-Request-Id", "given")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := decode(t, rec.Body).Header.Get("X-Request-Id"); got != "given" {
		t.Errorf("x-request-id = %q, want the client's %q", got, "given")
	}
}
