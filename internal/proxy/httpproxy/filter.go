package httpproxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/jwt"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// httpFilter is one compiled http filter. decode runs on the request
// before it is proxied; it returns false when it answered the request (the
// chain stops). It runs on the request goroutine and may block only on the
// request's own work (a fault delay, a JWKS fetch, an authorization check),
// never on a lock shared with other requests.
type httpFilter interface {
	decode(fx *filterCtx) bool
}

// chainFilter is an httpFilter with its chain entry's name and state.
type chainFilter struct {
	name     string
	disabled bool
	f        httpFilter
}

// filterChain is a listener's http filters, compiled once per config.
type filterChain struct {
	filters []chainFilter
	netRBAC *runtime.RBACFilter // network rbac before the HCM, checked per request
}

// filterDeps are what building filters needs beyond the runtime config.
type filterDeps struct {
	jwks *jwt.Cache
	cfg  *Config
	// prev is the chain this one replaces (nil: none); stateful filters
	// (local rate limit buckets) carry their state over.
	prev  *filterChain
	table *table           // the listener's route table; nil: none
	now   func() time.Time // nil: time.Now
}

// newFilterChain compiles l's filters; nil when l has none, so the request
// path skips the chain entirely.
func newFilterChain(l *runtime.HTTPListener, deps filterDeps) *filterChain {
	if l == nil || (len(l.Filters) == 0 && l.NetworkRBAC == nil) {
		return nil
	}
	fc := &filterChain{netRBAC: l.NetworkRBAC}
	for _, f := range l.Filters {
		var hf httpFilter
		switch {
		case f.Fault != nil:
			hf = newFaultFilter(f.Fault)
		case f.CORS != nil:
			hf = corsFilter{}
		case f.JWT != nil:
			hf = newJWTFilter(f.JWT, deps.jwks)
		case f.RBAC != nil:
			hf = &rbacFilter{cfg: f.RBAC}
		case f.ExtAuthz != nil:
			hf = newExtAuthzFilter(f.ExtAuthz, deps.cfg)
		case f.RateLimit != nil:
			hf = newRateLimitFilter(f.Name, f.RateLimit, deps.table, deps.prev.rateLimit(f.Name), deps.now)
		default:
			continue
		}
		fc.filters = append(fc.filters, chainFilter{name: f.Name, disabled: f.Disabled, f: hf})
	}
	return fc
}

// rateLimit returns fc's local rate limit filter named name, or nil.
func (fc *filterChain) rateLimit(name string) *rateLimitFilter {
	if fc == nil {
		return nil
	}
	for _, cf := range fc.filters {
		if rl, ok := cf.f.(*rateLimitFilter); ok && cf.name == name {
			return rl
		}
	}
	return nil
}

// filterCtx is one request's view while the chain runs.
type filterCtx struct {
	h     *Handler
	ex    *exchange
	r     *http.Request
	vh    *vhost // nil when no virtual host matched
	route *route // nil when no route matched
	name  string // the running filter's name, for override lookup

	// md is the request's dynamic metadata by filter namespace.
	md  map[string]*structpb.Struct
	req *authz.Request // built on first use, in reqBuf
	// reqBuf holds req, so that the filter context and the request it
	// describes are one allocation.
	reqBuf authz.Request
}

// override returns the running filter's typed_per_filter_config entry:
// the route's, else the virtual host's; nil for none.
func (fx *filterCtx) override() *runtime.FilterOverride {
	if fx.route != nil {
		if o := fx.route.rt.PerFilter[fx.name]; o != nil {
			return o
		}
	}
	if fx.vh != nil {
		return fx.vh.perFilter[fx.name]
	}
	return nil
}

// metadata returns namespace ns of the dynamic metadata, creating it.
func (fx *filterCtx) metadata(ns string) *structpb.Struct {
	if fx.md == nil {
		fx.md = map[string]*structpb.Struct{}
	}
	s := fx.md[ns]
	if s == nil {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		fx.md[ns] = s
	}
	return s
}

// authzRequest describes the request for the RBAC engine. It reflects
// headers as they are when first called; filters that edit headers (jwt)
// run before the RBAC filter in Istio's order and reset it.
func (fx *filterCtx) authzRequest() *authz.Request {
	if fx.req != nil {
		return fx.req
	}
	r := fx.r
	q := &fx.reqBuf
	*q = authz.Request{
		HTTP:    true,
		Method:  r.Method,
		Host:    r.Host,
		Path:    r.URL.RequestURI(),
		Scheme:  "http",
		Headers: r.Header,
	}
	connInfo(r, q)
	if !fx.ex.st.l.UseRemoteAddress {
		if xff := r.Header[hdrForwardedFor]; len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				q.RemoteIP = ip.Unmap()
			}
		}
	}
	if r.TLS != nil {
		q.Scheme = "https"
	}
	q.Metadata = fx.md
	fx.req = q
	return q
}

// connInfo fills the connection fields of q from r.
func connInfo(r *http.Request, q *authz.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		q.DirectRemoteIP = ap.Addr().Unmap()
	}
	switch la := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		ap := la.AddrPort() // without formatting and parsing the address
		q.DestinationIP, q.DestinationPort = ap.Addr().Unmap(), ap.Port()
	case net.Addr:
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			q.DestinationIP, q.DestinationPort = ap.Addr().Unmap(), ap.Port()
		}
	}
	if r.TLS != nil {
		q.SNI = r.TLS.ServerName
		if len(r.TLS.PeerCertificates) > 0 {
			q.Peer = authz.NewPeer(r.TLS.PeerCertificates[0])
		}
	}
}

// runFilters runs the chain; false when a filter answered the request.
func (h *Handler) runFilters(ex *exchange, r *http.Request, vh *vhost, rt *route) bool {
	fc := ex.st.filters
	fx := &filterCtx{h: h, ex: ex, r: r, vh: vh, route: rt}
	if fc.netRBAC != nil && !rbacCheck(fx, fc.netRBAC, true) {
		return false
	}
	for i := range fc.filters {
		cf := &fc.filters[i]
		fx.name = cf.name
		o := fx.override()
		if o != nil && o.Disabled {
			continue
		}
		if cf.disabled && (o == nil || !o.Enabled) {
			continue
		}
		if !cf.f.decode(fx) {
			return false
		}
	}
	return true
}

// reply answers from a filter with code and a text body.
func (fx *filterCtx) reply(code int, flag, body string) {
	fx.h.localReply(fx.ex, fx.r, code, flag, body)
}
