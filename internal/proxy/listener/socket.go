package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
	"github.com/trellis-mesh/trellis/internal/proxy/httpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	"github.com/trellis-mesh/trellis/internal/proxy/tcpproxy"
)

// tcpHandshakeTimeout bounds the TLS handshake of a TLS-terminating
// tcp_proxy chain (HTTP chains use the HTTP server's own bound).
const tcpHandshakeTimeout = 10 * time.Second

// bound is one listening socket: it accepts, peeks (listener filters),
// picks a filter chain and hands the connection to the chain's HTTP
// handler or tcp_proxy, terminating TLS first when the chain says so.
type bound struct {
	name    string
	kind    runtime.ListenerKind
	ln      net.Listener
	log     *slog.Logger
	secrets runtime.Secrets
	opts    *Options
	state   atomic.Pointer[chainSet]

	// HTTP/1.x connections are served by h1 on their dispatch goroutine.
	// HTTP/2 ones (prior knowledge, ALPN h2) share one net/http server
	// fed through queue; the chain of each travels in pending, from
	// dispatch to ConnContext.
	h1       *http1.Server
	queue    *connQueue
	srv      *http.Server
	ctx      context.Context    // done when the socket is cut
	cancel   context.CancelFunc // cancels ctx, so every request of srv and h1
	pending  sync.Map           // net.Conn → *chainState
	inFlight atomic.Int64       // HTTP requests being served

	tcp *tcpproxy.Proxy

	conns sync.WaitGroup // per-connection dispatch goroutines
	mu    sync.Mutex
	peek  map[net.Conn]struct{} // connections being inspected, closed on drain
}

// chainSet is one config's filter chains of a socket, ready to serve.
type chainSet struct {
	l       *runtime.Listener
	list    []*runtime.FilterChain  // l.Chains(), computed once
	inspect runtime.ListenerFilters // l.Inspect, plus what the chains need
	chains  map[*runtime.FilterChain]*chainState
}

// chainState is one filter chain ready to serve.
type chainState struct {
	fc   *runtime.FilterChain
	tls  *tls.Config        // nil: no TLS termination
	http *httpproxy.Handler // HTTP chains
	h1   http.Handler       // http, counted in the socket's inFlight
	tcp  *tcpproxy.Route    // TCP chains
	key  string             // identity across configs, to keep handlers

	local atomic.Pointer[localCert] // URI SANs of the certificate served, by certificate
}

// localCert is a served certificate and its URI SANs.
type localCert struct {
	cert *tls.Certificate
	uris []string
}

// localURIs returns the URI SANs of the chain's (first) certificate as it
// is now, for x-forwarded-client-cert's By= (Envoy's
// uriSanLocalCertificate). Parsed once per certificate: rotation swaps it.
func (cs *chainState) localURIs(secrets runtime.Secrets) []string {
	if secrets == nil || cs.fc.TLS == nil || len(cs.fc.TLS.CertSecrets) == 0 {
		return nil
	}
	c, err := secrets.Certificate(cs.fc.TLS.CertSecrets[0])
	if err != nil || c == nil || len(c.Certificate) == 0 {
		return nil
	}
	if lc := cs.local.Load(); lc != nil && lc.cert == c {
		return lc.uris
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil
		}
	}
	lc := &localCert{cert: c}
	for _, u := range leaf.URIs {
		lc.uris = append(lc.uris, u.String())
	}
	cs.local.Store(lc)
	return lc.uris
}

type chainCtxKey struct{}

func newBound(ln net.Listener, l *runtime.Listener, log *slog.Logger, opts *Options, tcpM *tcpproxy.Metrics) *bound {
	b := &bound{
		name: l.Name, kind: l.Kind, ln: ln, log: log, secrets: opts.Secrets, opts: opts,
		queue: newConnQueue(ln.Addr()),
		tcp:   tcpproxy.New(tcpproxy.Options{Logger: log, Metrics: tcpM, Admit: opts.AdmitTCP, Secrets: opts.Secrets}),
		peek:  map[net.Conn]struct{}{},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.srv = httpproxy.NewServer(http.HandlerFunc(b.serveHTTP), httpproxy.ServerOptions{Logger: log, BaseContext: b.ctx})
	b.h1 = httpproxy.NewHTTP1Server(httpproxy.ServerOptions{Logger: log})
	b.srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if v, ok := b.pending.LoadAndDelete(c); ok {
			cs := v.(*chainState)
			ctx = context.WithValue(ctx, chainCtxKey{}, cs)
			if cs.tls != nil {
				ctx = httpproxy.WithLocalURIs(ctx, cs.localURIs(b.secrets))
			}
		}
		return ctx
	}
	return b
}

// update makes connections accepted from now on use l of cfg. Chains whose
// key (name, kind and position) is unchanged keep their HTTP handler, so
// that open connections see new routes; connections accepted under a chain
// that is gone finish on it.
func (b *bound) update(cfg *runtime.Config, hcfg *httpproxy.Config, l *runtime.Listener, pickers map[string]lb.Picker) {
	prev := map[string]*chainState{}
	if old := b.state.Load(); old != nil {
		for _, cs := range old.chains {
			prev[cs.key] = cs
		}
	}
	set := &chainSet{l: l, chains: map[*runtime.FilterChain]*chainState{}}
	add := func(fc *runtime.FilterChain, key string) {
		if fc == nil {
			return
		}
		cs := &chainState{fc: fc, key: fmt.Sprintf("%s|%d|%s", key, fc.Kind, fc.Name)}
		if fc.TLS != nil {
			cs.tls = serverTLS(fc.TLS, b.secrets)
		}
		switch fc.Kind {
		case runtime.ListenerHTTP:
			if p := prev[cs.key]; p != nil && p.http != nil {
				cs.http = p.http
			} else {
				cs.http = httpproxy.NewHandler(httpproxy.Options{Logger: b.log, OnDone: b.opts.OnRequest})
			}
			cs.http.Update(hcfg, &runtime.Listener{
				Name: l.Name, Address: l.Address, Direction: l.Direction, Kind: runtime.ListenerHTTP, HTTP: fc.HTTP,
			})
			h := cs.http
			cs.h1 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.count(h, w, r) })
		case runtime.ListenerTCP:
			cs.tcp = b.tcp.Route(cfg, l.Direction, fc.TCP, pickers)
		}
		set.chains[fc] = cs
	}
	set.list = l.Chains()
	set.inspect = l.Inspect
	for i, fc := range set.list {
		add(fc, fmt.Sprint(i))
		// A chain matching on SNI or TLS cannot work without the TLS
		// inspector; Envoy used to add it by itself, Istio always does.
		if m := fc.Match; len(m.ServerNames) > 0 || m.TransportProtocol == runtime.TransportTLS {
			set.inspect.TLSInspector = true
		}
	}
	add(l.DefaultChain, "default")
	b.name = l.Name
	b.state.Store(set)
}

// serve accepts until the socket closes. Each connection is inspected and
// dispatched on its own goroutine, owned by b (drain waits for them).
func (b *bound) serve() error {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("listener: accept: %w", err)
		}
		if !b.trackPeek(c) {
			_ = c.Close()
			continue
		}
		b.conns.Add(1)
		go func() {
			defer b.conns.Done()
			b.dispatch(c)
		}()
	}
}

func (b *bound) trackPeek(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peek == nil {
		return false
	}
	b.peek[c] = struct{}{}
	return true
}

func (b *bound) untrackPeek(c net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.peek, c)
}

// dispatch inspects c, picks its chain and hands it over.
func (b *bound) dispatch(c net.Conn) {
	set := b.state.Load()
	pc, info, err := inspect(c, set.inspect)
	b.untrackPeek(c)
	if err != nil && !(errors.Is(err, errPeekTimeout) && set.inspect.ContinueOnTimeout) {
		b.log.Debug("connection closed while inspecting", "remote", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	fc := selectChain(set.list, set.l.DefaultChain, info)
	cs := set.chains[fc]
	if cs == nil {
		b.log.Debug("no filter chain matches", "remote", c.RemoteAddr().String(),
			"sni", info.sni, "transport", info.transport, "alpn", info.alpn)
		_ = c.Close()
		return
	}
	h2 := false
	if cs.http != nil && cs.tls == nil {
		if h2, err = b.plainH2(pc, info); err != nil {
			b.log.Debug("connection closed before its first request", "remote", c.RemoteAddr().String(), "error", err)
			_ = c.Close()
			return
		}
	}
	if cs.http != nil {
		// HTTP connections read and write with raw syscalls, skipping the
		// runtime's syscall bookkeeping and the sysmon wake-ups it causes
		// (http1.NewWaitConn); it splices as the *net.TCPConn does.
		pc.Conn = http1.NewWaitConn(c)
	}
	var conn net.Conn = pc
	if len(pc.head) == 0 {
		conn = pc.Conn // nothing peeked: keep the TCP conn itself (splice, CloseWrite)
	}
	if cs.tls != nil {
		conn = tls.Server(conn, cs.tls)
	}
	switch {
	case cs.http != nil:
		b.serveHTTPConn(conn, cs, h2)
	case cs.tcp != nil:
		if tc, ok := conn.(*tls.Conn); ok {
			ctx, cancel := context.WithTimeout(b.ctx, tcpHandshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				b.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
				_ = conn.Close()
				return
			}
		}
		b.tcp.Handle(conn, cs.tcp)
	default:
		_ = conn.Close()
	}
}

// serveHTTPConn serves a connection of an HTTP chain: HTTP/1.x on this
// goroutine (http1), HTTP/2 through the socket's net/http server. A TLS
// connection is handshaken here to learn its ALPN protocol.
func (b *bound) serveHTTPConn(conn net.Conn, cs *chainState, h2 bool) {
	if tc, ok := conn.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(b.ctx, httpproxy.ReadHeaderTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			b.log.Debug("tls handshake failed", "remote", conn.RemoteAddr().String(), "error", err)
			_ = conn.Close()
			return
		}
		h2 = tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	if h2 {
		b.pending.Store(conn, cs)
		if !b.queue.push(conn) {
			b.pending.Delete(conn)
			_ = conn.Close()
		}
		return
	}
	ctx := b.ctx
	if cs.tls != nil {
		ctx = httpproxy.WithLocalURIs(ctx, cs.localURIs(b.secrets))
	}
	_ = b.h1.ServeConn(ctx, conn, cs.h1)
}

// plainH2 reports whether a plain-text connection speaks HTTP/2 with
// prior knowledge: the HTTP inspector may have told already, else the
// first bytes are compared with the preface (kept in pc for the server).
func (b *bound) plainH2(pc *peekedConn, info connInfo) (bool, error) {
	for _, p := range info.alpn {
		switch p {
		case "h2c":
			return true, nil
		case "http/1.1", "http/1.0":
			return false, nil
		}
	}
	_ = pc.Conn.SetReadDeadline(time.Now().Add(httpproxy.ReadHeaderTimeout))
	defer pc.Conn.SetReadDeadline(time.Time{})
	for {
		n := min(len(pc.head), len(h2Preface))
		if !bytes.Equal(pc.head[:n], h2Preface[:n]) {
			return false, nil
		}
		if n == len(h2Preface) {
			return true, nil
		}
		if err := pc.more(len(h2Preface)); err != nil {
			return false, fmt.Errorf("listener: read preface: %w", err)
		}
	}
}

// serveHTTP runs an HTTP/2 request through its connection's chain handler.
func (b *bound) serveHTTP(w http.ResponseWriter, r *http.Request) {
	cs, _ := r.Context().Value(chainCtxKey{}).(*chainState)
	if cs == nil || cs.http == nil {
		http.Error(w, "no filter chain", http.StatusNotFound)
		return
	}
	b.count(cs.http, w, r)
}

// count serves r with h, counted in b.inFlight (drain waits for it).
func (b *bound) count(h http.Handler, w http.ResponseWriter, r *http.Request) {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	h.ServeHTTP(w, r)
}

// closePeeking closes connections still being inspected.
func (b *bound) closePeeking() {
	b.mu.Lock()
	peek := b.peek
	b.peek = nil
	b.mu.Unlock()
	for c := range peek {
		_ = c.Close()
	}
}

// connQueue is a net.Listener fed by dispatch: the HTTP server's accept
// loop takes connections from it.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept; it fails once the queue is closed.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closed.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
