package httpproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header()["Content-Type"] = []string{"text/plain"}
	_, _ = w.Write([]byte("ok"))
})

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the proxy rather than the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// echoHandler answers with the request body, with a Content-Length, as
// fortio's echo server does.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header()["Content-Type"] = []string{"application/octet-stream"}
	_, _ = w.Write(b)
})

// BenchmarkProxiedRequest measures one request through the handler to a
// loopback upstream, upstream client and server included: "get" is a GET
// answered "ok", "post-1KiB" a 1 KiB POST echoed back (Istio's load
// scenario). allocs/op is what issue 5 tracks.
func BenchmarkProxiedRequest(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	for _, proto := range []struct {
		name string
		p    runtime.Protocol
	}{{"h1", runtime.HTTP1}, {"h2c", runtime.HTTP2}} {
		for _, tc := range []struct {
			name string
			up   http.Handler
			body string
			rbac bool // an RBAC filter (Istio's DENY of /admin) that allows the request
		}{{"", okHandler, "", false}, {"/post-1KiB", echoHandler, payload, false}, {"/rbac", okHandler, "", true}} {
			b.Run(proto.name+tc.name, func(b *testing.B) {
				cfg := config([]*runtime.Cluster{cluster("c", proto.p, backend(b, tc.up))}, anyHost("c", nil))
				if tc.rbac {
					cfg.Listeners[0].HTTP.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRBAC, RBAC: denyAdmin(b)}}
				}
				h := newHandler(b, cfg, Options{})
				req := httptest.NewRequest("GET", "http://svc/bench", nil)
				req.Header.Set("X-Request-Id", "fixed")
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if tc.body != "" {
						// A fresh request per POST, not counted.
						b.StopTimer()
						req = httptest.NewRequest("POST", "http://svc/bench", strings.NewReader(tc.body))
						req.Header.Set("X-Request-Id", "fixed")
						b.StartTimer()
					}
					w := &discardWriter{h: http.Header{}}
					h.ServeHTTP(w, req)
				}
			})
		}
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	var routes []*runtime.Route
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h"} {
		routes = append(routes, &runtime.Route{Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: p, CaseSensitive: true,
			Headers: []runtime.HeaderMatch{{Name: "x-version", Match: runtime.StringMatch{Value: "v2"}}}}, Forward: fwd("c")})
	}
	routes = append(routes,
		&runtime.Route{Match: runtime.RouteMatch{PathKind: runtime.PathRegex, Regex: regexp.MustCompile(`^(?:/r/[0-9]+)$`)}, Forward: fwd("c")},
		&runtime.Route{Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/api/", CaseSensitive: false}, Forward: fwd("c")},
	)
	var vhosts []*runtime.VirtualHost
	for _, d := range []string{"details", "ratings", "productpage", "*.example.com"} {
		vhosts = append(vhosts, &runtime.VirtualHost{Name: d, Domains: []string{d, d + ":9080"}, Routes: routes})
	}
	cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1)}, vhosts...)
	c := NewConfig(cfg, nil, NewPools(), nil)
	tab := c.tables["rt"]
	req := httptest.NewRequest("GET", "http://reviews.example.com/API/v1/items", nil)
	req.Header.Set("X-Version", "v2")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		vh := tab.vhost(req.Host)
		if vh.route(req, req.URL.EscapedPath()) == nil {
			b.Fatal("no route")
		}
	}
}

func BenchmarkHeaderMutation(b *testing.B) {
	m := compileMutation(runtime.HeaderMutation{
		Set:    []runtime.Header{{Name: "x-set", Value: "1"}, {Name: "x-other", Value: "2"}},
		Add:    []runtime.Header{{Name: "x-add", Value: "3"}},
		Remove: []string{"x-remove"},
	})
	base := http.Header{"X-Remove": {"a"}, "Accept": {"*/*"}, "User-Agent": {"bench"}}
	h := make(http.Header, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		clear(h)
		for k, v := range base {
			h[k] = v
		}
		host := "svc"
		m.apply(h, &host)
	}
}

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		_ = newRequestID()
	}
}
