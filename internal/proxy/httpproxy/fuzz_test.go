package httpproxy

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// FuzzRoute feeds arbitrary hosts, paths and headers through virtual host
// selection, route matching and path rewriting: none may panic, and a
// prefix match must hold for the path it matched.
func FuzzRoute(f *testing.F) {
	f.Add("reviews:9080", "/api/v1", "x-user", "bob")
	f.Add("A.EXAMPLE.COM", "/%2F..%2f", "", "")
	f.Add("foo.", "", ":authority", "\x00")
	prefix := runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/api/", CaseSensitive: false}
	cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1)},
		&runtime.VirtualHost{Name: "exact", Domains: []string{"reviews:9080"}, Routes: []*runtime.Route{
			{Name: "p", Match: prefix, Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}}, PrefixRewrite: "/"}},
			{Name: "h", Match: runtime.RouteMatch{PathKind: runtime.PathRegex, Regex: regexp.MustCompile(`^(?:/x.*)$`),
				Headers: []runtime.HeaderMatch{{Name: "x-user", Match: runtime.StringMatch{Kind: runtime.MatchSuffix, Value: "ob", IgnoreCase: true}}}}},
		}},
		&runtime.VirtualHost{Name: "suffix", Domains: []string{"*.example.com"}},
		&runtime.VirtualHost{Name: "prefix", Domains: []string{"foo.*"}},
	)
	tab := NewConfig(cfg, nil, NewPools(), nil).tables["rt"]
	f.Fuzz(func(t *testing.T, host, path, hname, hval string) {
		r := &http.Request{Method: "GET", Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}
		if hname != "" {
			r.Header[http.CanonicalHeaderKey(hname)] = []string{hval}
		}
		vh := tab.vhost(host)
		if vh == nil {
			return
		}
		p := r.URL.EscapedPath()
		rt := vh.route(r, p)
		if rt == nil || rt.match.kind != runtime.PathPrefix {
			return
		}
		esc, _ := rewritePath(p, rt.match.path, "/")
		if len(esc) == 0 || esc[0] != '/' {
			t.Errorf("rewrite of %q = %q, want a path starting with /", p, esc)
		}
	})
}
