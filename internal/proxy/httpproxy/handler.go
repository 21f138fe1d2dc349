package httpproxy

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/jwt"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// RequestInfo describes one request as the proxy handled it, for metrics
// and access logs.
type RequestInfo struct {
	Status    int    // status sent downstream; 0 when nothing was sent
	Flags     string // Envoy response flags, comma separated; "" for none
	Route     string // matched route name
	Cluster   string // chosen cluster
	Upstream  string // host:port of the last attempt's endpoint
	Attempts  int    // upstream attempts made
	RequestID string // x-request-id sent upstream
	Duration  time.Duration
}

// Options configure a Handler. Zero values are documented per field.
type Options struct {
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// OnDone, when set, is called after each request with what happened
	// (an access log). It runs on the request goroutine and MUST NOT retain
	// info after returning.
	OnDone func(r *http.Request, info *RequestInfo)
	// JWKS caches the JWKS documents jwt_authn filters fetch; share one
	// across handlers so that documents outlive configs. nil: a private one.
	JWKS *jwt.Cache
}

// Handler serves one HTTP listener. It is safe for concurrent use; Update
// may be called at any time and affects requests that start afterwards.
type Handler struct {
	state    atomic.Pointer[state]
	inFlight atomic.Int64
	log      *slog.Logger
	onDone   func(*http.Request, *RequestInfo)
	jwks     *jwt.Cache
}

// state is what one request reads: the config and this listener's part.
type state struct {
	cfg   *Config
	l     *runtime.HTTPListener
	dir   runtime.Direction
	table *table // nil: every request is NR
	// filters are the listener's http filters; nil: none (filter.go).
	filters *filterChain
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a handler that answers 404 NR until the first Update.
func NewHandler(opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "httpproxy")
	h := &Handler{log: log, onDone: opts.OnDone, jwks: opts.JWKS}
	if h.jwks == nil {
		h.jwks = jwt.NewCache(jwt.CacheOptions{Logger: log, Client: &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}})
	}
	return h
}

// Update makes requests that start from now on use cfg and l (which must
// be an HTTP listener of cfg's config). In-flight requests keep theirs.
func (h *Handler) Update(cfg *Config, l *runtime.Listener) {
	st := &state{cfg: cfg, l: l.HTTP, dir: l.Direction & 1}
	if l.HTTP != nil {
		st.table = cfg.tables[l.HTTP.RouteName]
		var prev *filterChain
		if old := h.state.Load(); old != nil {
			prev = old.filters
		}
		st.filters = newFilterChain(l.HTTP, filterDeps{jwks: h.jwks, cfg: cfg, prev: prev, table: st.table})
	}
	h.state.Store(st)
}

// InFlight returns the number of requests being served, including
// upgraded (WebSocket) ones, which http.Server.Shutdown does not track.
func (h *Handler) InFlight() int64 { return h.inFlight.Load() }

type exchangeKey struct{}

// exchange is one request's private state; it is also the ResponseWriter
// that local replies and the forwarder write through, so that the status
// is recorded.
type exchange struct {
	info    RequestInfo
	w       http.ResponseWriter
	wrote   bool
	st      *state
	route   *route
	dest    *destination
	ctx     context.Context // the route-timeout context
	downH2  bool
	upgrade bool
	picked  lb.Result // the last attempt's pick, released at the end

	cancels [2]context.CancelFunc // per-try timeouts, released at the end
	more    []context.CancelFunc

	up     upstreamExchange // hash, circuit-breaker releases (upstream_exchange.go)
	replay replayBody       // the request body for retries (transport.go)
	resp   http.Response    // lent to the HTTP/1.1 client for attempt 1
	fwd    forwardState     // the upstream request and its context (forward.go)

	// hdr is the upstream request's header map, kept with the exchange
	// when it is recycled.
	hdr http.Header
	// shared is set when something may still reference the exchange
	// after ServeHTTP returns (a transport other than the synchronous
	// HTTP/1.1 client, a body sent from a goroutine, an upgrade, a
	// panic): it is then left to the garbage collector.
	shared bool
}

// exchanges recycles exchanges: one per request, about 1 KiB, and with
// the upstream header map the largest allocation of a proxied request.
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// recycle returns ex to the pool unless it may still be referenced.
func (ex *exchange) recycle() {
	if ex.shared {
		return
	}
	hdr, respHdr := ex.hdr, ex.resp.Header
	clear(hdr)
	*ex = exchange{hdr: hdr, resp: http.Response{Header: respHdr}}
	exchanges.Put(ex)
}

// InfoFrom returns the RequestInfo of the request whose context is ctx
// (the upstream request's context inside the proxy), or nil.
func InfoFrom(ctx context.Context) *RequestInfo {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return &ex.info
	}
	return nil
}

func (ex *exchange) Header() http.Header { return ex.w.Header() }

func (ex *exchange) WriteHeader(code int) {
	if !ex.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		ex.wrote = true
		ex.info.Status = code
	}
	ex.w.WriteHeader(code)
}

func (ex *exchange) Write(b []byte) (int, error) {
	if !ex.wrote {
		ex.wrote = true
		ex.info.Status = http.StatusOK
	}
	return ex.w.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (ex *exchange) Unwrap() http.ResponseWriter { return ex.w }

func (ex *exchange) addFlag(f string) {
	switch {
	case ex.info.Flags == "":
		ex.info.Flags = f
	case !strings.Contains(ex.info.Flags, f):
		ex.info.Flags += "," + f
	}
}

func (ex *exchange) addCancel(c context.CancelFunc) {
	for i := range ex.cancels {
		if ex.cancels[i] == nil {
			ex.cancels[i] = c
			return
		}
	}
	ex.more = append(ex.more, c)
}

func (ex *exchange) release() {
	ex.up.release()
	ex.picked.Done()
	ex.picked = lb.Result{}
	for _, c := range ex.cancels {
		if c != nil {
			c()
		}
	}
	for _, c := range ex.more {
		c()
	}
}

// ServeHTTP routes and proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.inFlight.Add(1)
	ex := exchanges.Get().(*exchange)
	ex.w, ex.st = w, h.state.Load()
	defer func() {
		h.inFlight.Add(-1)
		p := recover()
		if p != nil {
			ex.shared = true
			// http.ErrAbortHandler from the forwarder: the response
			// broke mid-stream. Record it, then let the server abort.
			if ex.ctx != nil && ex.ctx.Err() == context.DeadlineExceeded {
				ex.addFlag("UT")
			} else if r.Context().Err() != nil {
				ex.addFlag("DC")
			} else {
				ex.addFlag("UC")
			}
		}
		ex.release()
		h.finish(ex, r, start)
		ex.recycle()
		if p != nil {
			panic(p)
		}
	}()
	h.serve(ex, r)
}

func (h *Handler) finish(ex *exchange, r *http.Request, start time.Time) {
	ex.info.Duration = time.Since(start)
	if st := ex.st; st != nil {
		cs := st.cfg.unknown[st.dir]
		if ex.dest != nil && ex.dest.up != nil {
			cs = ex.dest.up.stats[st.dir]
		} else if up := st.cfg.clusters[ex.info.Cluster]; up != nil {
			cs = up.stats[st.dir] // BlackHoleCluster (REGISTRY_ONLY)
		}
		cs.observe(ex.info.Status, ex.info.Flags, ex.info.Duration)
	}
	if h.onDone != nil {
		h.onDone(r, &ex.info)
	}
}

func (h *Handler) serve(ex *exchange, r *http.Request) {
	st := ex.st
	if v := r.Header[hdrRequestID]; len(v) > 0 && v[0] != "" {
		ex.info.RequestID = v[0]
	} else {
		ex.info.RequestID = newRequestID()
	}
	if st != nil && st.l != nil && !h.preRoute(ex, r) {
		return
	}
	if st == nil || st.table == nil {
		if st != nil && st.filters != nil && !h.runFilters(ex, r, nil, nil) {
			return
		}
		h.localReply(ex, r, http.StatusNotFound, "NR", "")
		return
	}
	vh := st.table.vhost(r.Host)
	if vh != nil && vh.requireTLS && r.TLS == nil {
		h.requireTLS(ex, r) // Envoy answers before any filter or route
		return
	}
	var rt *route
	if vh != nil {
		rt = vh.route(r, r.URL.EscapedPath())
	}
	if st.filters != nil && !h.runFilters(ex, r, vh, rt) {
		return
	}
	if rt == nil {
		h.localReply(ex, r, http.StatusNotFound, "NR", "")
		return
	}
	ex.route = rt
	ex.info.Route = rt.rt.Name
	switch {
	case rt.rt.Direct != nil:
		h.direct(ex, r, rt.rt.Direct)
		return
	case rt.rt.Redirect != nil:
		h.redirect(ex, r, rt.rt.Redirect)
		return
	case rt.rt.Forward == nil:
		h.localReply(ex, r, http.StatusNotFound, "NR", "")
		return
	}
	if up := r.Header["Upgrade"]; len(up) > 0 {
		if strings.EqualFold(up[0], "websocket") && st.l.WebSocket {
			ex.upgrade = true
			ex.shared = true
		} else if strings.EqualFold(up[0], "websocket") {
			h.localReply(ex, r, http.StatusForbidden, "", "")
			return
		}
		// Other upgrades (h2c, TLS) are not ours to negotiate: the request
		// goes upstream as a plain one (Upgrade is hop-by-hop).
	}
	d := rt.pick()
	if d == nil || d.up == nil {
		if d != nil {
			ex.info.Cluster = d.name
		}
		h.localReply(ex, r, http.StatusServiceUnavailable, "NC", "")
		return
	}
	ex.dest = d
	ex.info.Cluster = d.name
	ex.downH2 = r.ProtoMajor == 2
	ctx := r.Context()
	if rt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.timeout)
		defer cancel()
	}
	ex.ctx = ctx
	h.prepareUpstream(ex, r) // hash policy, mirrors (upstream_exchange.go)
	h.forward(ex, r)
}

// upstreamError answers a request whose upstream exchange failed before
// a response was written.
func (h *Handler) upstreamError(ex *exchange, r *http.Request, err error) {
	switch {
	case strings.Contains(ex.info.Flags, "UH"):
		h.localReply(ex, r, http.StatusServiceUnavailable, "", "no healthy upstream")
	case err == errOverflow:
		h.localReply(ex, r, http.StatusServiceUnavailable, "UO",
			"upstream connect error or disconnect/reset before headers. reset reason: overflow")
	case ex.ctx.Err() == context.DeadlineExceeded || strings.Contains(ex.info.Flags, "UT"):
		h.localReply(ex, r, http.StatusGatewayTimeout, "UT", "upstream request timeout")
	case ex.ctx.Err() == context.Canceled:
		ex.addFlag("DC") // the client went away; nobody to answer
	case strings.Contains(ex.info.Flags, "UF"):
		h.localReply(ex, r, http.StatusServiceUnavailable, "",
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	default:
		h.log.Debug("upstream reset", "cluster", ex.info.Cluster, "upstream", ex.info.Upstream, "error", err)
		h.localReply(ex, r, http.StatusServiceUnavailable, "UC",
			"upstream connect error or disconnect/reset before headers. reset reason: connection termination")
	}
}

func (h *Handler) direct(ex *exchange, r *http.Request, d *runtime.DirectResponse) {
	markBlackHole(ex)
	hd := ex.Header()
	ex.route.respHdr.apply(hd, nil)
	if len(d.Body) > 0 {
		if hd[hdrContentType] == nil {
			hd[hdrContentType] = textPlain
		}
		hd["Content-Length"] = []string{itoa(len(d.Body))}
	}
	ex.WriteHeader(d.Status)
	if r.Method != http.MethodHead {
		_, _ = ex.Write(d.Body)
	}
}

func (h *Handler) redirect(ex *exchange, r *http.Request, rd *runtime.RedirectAction) {
	scheme := rd.Scheme
	if scheme == "" {
		scheme = "http"
	}
	host := r.Host
	if rd.Host != "" {
		host = rd.Host
	}
	if rd.Port != 0 {
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
			host = host[:i]
		}
		host += ":" + itoa(int(rd.Port))
	}
	path := r.URL.RequestURI()
	if rd.Path != "" {
		path = rd.Path
		if q := r.URL.RawQuery; q != "" && !strings.Contains(path, "?") {
			path += "?" + q
		}
	}
	code := rd.StatusCode
	if code == 0 {
		code = http.StatusMovedPermanently
	}
	hd := ex.Header()
	ex.route.respHdr.apply(hd, nil)
	hd["Location"] = []string{scheme + "://" + host + path}
	ex.WriteHeader(code)
}

var (
	textPlain       = []string{"text/plain"}[:1:1]
	applicationGRPC = []string{"application/grpc"}[:1:1]
)

// localReply answers from the proxy itself. flag, when set, is added to the
// response flags. gRPC requests get a trailers-only gRPC response, as Envoy
// sends (HTTP 200 carrying grpc-status).
func (h *Handler) localReply(ex *exchange, r *http.Request, code int, flag, body string) {
	if flag != "" {
		ex.addFlag(flag)
	}
	hd := ex.Header()
	if ex.route != nil {
		ex.route.respHdr.apply(hd, nil)
	}
	if ct := r.Header[hdrContentType]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		hd[hdrContentType] = applicationGRPC
		hd["Grpc-Status"] = []string{grpcStatus(code)}
		if body != "" {
			hd["Grpc-Message"] = []string{body}
		}
		ex.WriteHeader(http.StatusOK)
		return
	}
	if body != "" {
		hd[hdrContentType] = textPlain
		hd["Content-Length"] = []string{itoa(len(body))}
	}
	ex.WriteHeader(code)
	if body != "" && r.Method != http.MethodHead {
		_, _ = ex.Write([]byte(body))
	}
}

// grpcStatus maps an HTTP status to a gRPC code as gRPC's HTTP mapping
// (doc/http-grpc-status-mapping.md) does.
func grpcStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "13" // INTERNAL
	case http.StatusUnauthorized:
		return "16" // UNAUTHENTICATED
	case http.StatusForbidden:
		return "7" // PERMISSION_DENIED
	case http.StatusNotFound:
		return "12" // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "14" // UNAVAILABLE
	}
	return "2" // UNKNOWN
}
