package httpproxy

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// route is a runtime.Route compiled for the request path.
type route struct {
	rt       *runtime.Route
	match    matcher
	reqHdr   mutation
	respHdr  mutation
	clusters []destination
	total    uint64 // sum of destination weights
	timeout  time.Duration
	retry    *retryPolicy // nil: no retries
}

// destination is one weighted cluster of a route.
type destination struct {
	name    string
	up      *upstream // nil when the cluster is unknown (flag NC)
	weight  uint64
	reqHdr  mutation
	respHdr mutation
}

// compileRoute compiles r. retries holds the retry policies compiled for
// the table so far: routes share parsed policies (compile), and so share
// the compiled ones.
func compileRoute(r *runtime.Route, clusters map[string]*upstream, retries map[*runtime.RetryPolicy]*retryPolicy) *route {
	c := &route{
		rt:      r,
		match:   compileMatch(r.Match),
		reqHdr:  compileMutation(r.RequestHeaders),
		respHdr: compileMutation(r.ResponseHeaders),
	}
	if f := r.Forward; f != nil {
		c.timeout = f.Timeout
		rp, ok := retries[f.Retry]
		if !ok {
			rp = compileRetry(f.Retry)
			retries[f.Retry] = rp
		}
		c.retry = rp
		c.clusters = make([]destination, 0, len(f.Clusters))
		for _, wc := range f.Clusters {
			w := uint64(wc.Weight)
			if len(f.Clusters) == 1 && w == 0 {
				w = 1
			}
			c.clusters = append(c.clusters, destination{
				name:    wc.Name,
				up:      clusters[wc.Name],
				weight:  w,
				reqHdr:  compileMutation(wc.RequestHeaders),
				respHdr: compileMutation(wc.ResponseHeaders),
			})
			c.total += w
		}
	}
	return c
}

// pick chooses a destination by weight. It returns nil when the route has
// none (or all weights are zero).
func (r *route) pick() *destination {
	switch {
	case len(r.clusters) == 1:
		return &r.clusters[0]
	case r.total == 0:
		return nil
	}
	x := rand.Uint64N(r.total)
	for i := range r.clusters {
		if x < r.clusters[i].weight {
			return &r.clusters[i]
		}
		x -= r.clusters[i].weight
	}
	return &r.clusters[len(r.clusters)-1]
}

// matcher is a RouteMatch with header names resolved.
type matcher struct {
	kind    runtime.PathMatchKind
	path    string
	re      interface{ MatchString(string) bool }
	fold    bool // case-insensitive path
	headers []headerMatcher
	query   []runtime.QueryMatch
}

// pseudo identifies HTTP/2 pseudo-headers that Go keeps outside Header.
type pseudo uint8

const (
	notPseudo pseudo = iota
	pseudoMethod
	pseudoAuthority
	pseudoPath
	pseudoScheme
)

type headerMatcher struct {
	key    string // canonical header key when pseudo == notPseudo
	pseudo pseudo
	match  runtime.StringMatch
	invert bool
}

func compileMatch(m runtime.RouteMatch) matcher {
	c := matcher{kind: m.PathKind, path: m.Path, fold: !m.CaseSensitive, query: m.Query}
	if m.Regex != nil {
		c.re = m.Regex
	}
	for _, h := range m.Headers {
		hm := headerMatcher{match: h.Match, invert: h.Invert}
		switch strings.ToLower(h.Name) {
		case ":method":
			hm.pseudo = pseudoMethod
		case ":authority", "host":
			hm.pseudo = pseudoAuthority
		case ":path":
			hm.pseudo = pseudoPath
		case ":scheme":
			hm.pseudo = pseudoScheme
		default:
			hm.key = http.CanonicalHeaderKey(h.Name)
		}
		c.headers = append(c.headers, hm)
	}
	return c
}

// matches reports whether r (whose escaped path without query is path)
// satisfies every condition.
func (m *matcher) matches(r *http.Request, path string) bool {
	switch m.kind {
	case runtime.PathPrefix:
		if len(path) < len(m.path) {
			return false
		}
		if m.fold {
			if !strings.EqualFold(path[:len(m.path)], m.path) {
				return false
			}
		} else if path[:len(m.path)] != m.path {
			return false
		}
	case runtime.PathExact:
		if m.fold {
			if !strings.EqualFold(path, m.path) {
				return false
			}
		} else if path != m.path {
			return false
		}
	case runtime.PathRegex:
		if m.re == nil || !m.re.MatchString(path) {
			return false
		}
	}
	for i := range m.headers {
		if !m.headers[i].matches(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := r.URL.Query()
		for _, qm := range m.query {
			vs, ok := q[qm.Name]
			if !ok {
				return false
			}
			if qm.Match.Kind != runtime.MatchPresent && !stringMatches(&qm.Match, vs[0]) {
				return false
			}
		}
	}
	return true
}

func (h *headerMatcher) matches(r *http.Request) bool {
	var v string
	present := true
	switch h.pseudo {
	case pseudoMethod:
		v = r.Method
	case pseudoAuthority:
		v = r.Host
	case pseudoPath:
		v = r.URL.RequestURI()
	case pseudoScheme:
		v = "http"
	default:
		vs := r.Header[h.key]
		switch len(vs) {
		case 0:
			present = false
		case 1:
			v = vs[0]
		default:
			// Envoy matches repeated headers on their comma-joined value.
			v = strings.Join(vs, ",")
		}
	}
	ok := present
	if present && h.match.Kind != runtime.MatchPresent {
		ok = stringMatches(&h.match, v)
	}
	return ok != h.invert
}

func stringMatches(m *runtime.StringMatch, v string) bool {
	switch m.Kind {
	case runtime.MatchExact:
		if m.IgnoreCase {
			return strings.EqualFold(v, m.Value)
		}
		return v == m.Value
	case runtime.MatchPrefix:
		if len(v) < len(m.Value) {
			return false
		}
		if m.IgnoreCase {
			return strings.EqualFold(v[:len(m.Value)], m.Value)
		}
		return v[:len(m.Value)] == m.Value
	case runtime.MatchSuffix:
		if len(v) < len(m.Value) {
			return false
		}
		if m.IgnoreCase {
			return strings.EqualFold(v[len(v)-len(m.Value):], m.Value)
		}
		return v[len(v)-len(m.Value):] == m.Value
	case runtime.MatchRegex:
		return m.Regex != nil && m.Regex.MatchString(v)
	case runtime.MatchPresent:
		return true
	}
	return false
}

// route returns the first route of vh matching r, or nil.
func (vh *vhost) route(r *http.Request, path string) *route {
	for _, rt := range vh.routes {
		if rt.match.matches(r, path) {
			return rt
		}
	}
	return nil
}

// rewritePath applies a prefix rewrite to the escaped path p and returns
// the new escaped and unescaped forms.
func rewritePath(p, prefix, replacement string) (escaped, unescaped string) {
	escaped = replacement + p[min(len(prefix), len(p)):]
	if unescaped, err := url.PathUnescape(escaped); err == nil {
		return escaped, unescaped
	}
	return escaped, escaped
}
