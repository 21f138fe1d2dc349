package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server defaults (Envoy's http_connection_manager where it has one).
const (
	defaultReadHeaderTimeout = time.Minute
	defaultIdleTimeout       = time.Hour // Envoy's idle_timeout
	defaultMaxHeaderBytes    = 60 << 10  // Envoy's max_request_headers_kb
	defaultWatchAfter        = 10 * time.Millisecond
	// serverMaxDrain bounds how much of a request body the handler left
	// unread is discarded to keep the connection (net/http's
	// maxPostHandlerReadBytes).
	serverMaxDrain = 256 << 10
	// serverHeldWait bounds how long the read that sent a held response
	// waits for readiness before it reads anyway (holdResponse).
	serverHeldWait = 100 * time.Millisecond
)

// ErrServerClosed is returned by ServeConn once Shutdown or Close ran.
var ErrServerClosed = errors.New("http1: server closed")

// ServerOptions configure NewServer. Zero values are documented per field.
type ServerOptions struct {
	// Logger receives handler panics and, at debug level, bad requests;
	// nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading one request's header from its
	// first byte (slowloris); 0 means one minute. Bodies are unbounded.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection that waits this long for its next
	// request; 0 means one hour (Envoy's idle_timeout).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header fields; more is
	// answered 431. 0 means 60 KiB (Envoy's max_request_headers_kb).
	MaxHeaderBytes int
	// WatchAfter is how long a request may run before the server watches
	// its connection for the client going away, which cancels the
	// request's context. Faster requests cost no goroutine at all (see
	// serverConn.watch). 0 means 10 ms; negative watches from the start.
	WatchAfter time.Duration
}

// Server serves HTTP/1.x connections handed to ServeConn, each on the
// caller's goroutine: one request at a time, no goroutine per request.
// All methods are safe for concurrent use.
type Server struct {
	log         *slog.Logger
	readHeader  time.Duration
	idle        time.Duration
	maxHeader   int
	watchAfter  time.Duration
	std         *http.Server // the http.ServerContextKey value (see ServeConn)
	date        atomic.Pointer[serverDate]
	shutdown    atomic.Bool
	mu          sync.Mutex
	conns       map[*serverConn]struct{}
	readerPool  sync.Pool // *bufio.Reader
	writerPool  sync.Pool // *bufio.Writer
	pendingPool sync.Pool // *[]byte, bodies held before the framing is decided
}

// NewServer returns a server with opts applied.
func NewServer(opts ServerOptions) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:        log.With("component", "http1"),
		readHeader: cmpOr(opts.ReadHeaderTimeout, defaultReadHeaderTimeout),
		idle:       cmpOr(opts.IdleTimeout, defaultIdleTimeout),
		maxHeader:  cmpOr(opts.MaxHeaderBytes, defaultMaxHeaderBytes),
		watchAfter: cmpOr(opts.WatchAfter, defaultWatchAfter),
		// httputil.ReverseProxy turns a broken response copy into
		// panic(http.ErrAbortHandler) only when this key holds a value
		// (shouldPanicOnCopyError); the panic is how the proxy records
		// DC/UC mid-body and how the connection gets closed.
		std:   &http.Server{},
		conns: map[*serverConn]struct{}{},
	}
	return s
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// ServeConn serves HTTP/1.x requests on c with h until the client closes
// it, a request or the server asks to close it, or Shutdown or Close. It
// closes c, unless a handler hijacked it. A *tls.Conn is handshaken
// first (within ReadHeaderTimeout) if it is not yet; r.TLS is its state.
// Every request's context derives from ctx, which may carry
// per-connection values; the server adds http.LocalAddrContextKey and
// http.ServerContextKey. It returns nil when the connection ended
// normally and ErrServerClosed after Shutdown or Close.
func (s *Server) ServeConn(ctx context.Context, c net.Conn, h http.Handler) error {
	sc := &serverConn{srv: s, rwc: c, h: h, remote: c.RemoteAddr().String()}
	if !s.track(sc, true) {
		_ = c.Close()
		return ErrServerClosed
	}
	defer s.track(sc, false)
	if tc, ok := c.(*tls.Conn); ok {
		if err := s.handshake(ctx, tc); err != nil {
			_ = c.Close()
			s.log.Debug("tls handshake failed", "remote", sc.remote, "error", err)
			return nil
		}
		st := tc.ConnectionState()
		sc.tls = &st
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, s.std)
	sc.ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	sc.values = context.WithoutCancel(sc.ctx)
	if sc.ctx.Done() != nil {
		stop := context.AfterFunc(sc.ctx, func() {
			if w := sc.cur.Load(); w != nil {
				w.ctx.cancel(sc.ctx.Err())
			}
		})
		defer stop()
	}
	sc.serve()
	if s.shutdown.Load() {
		return ErrServerClosed
	}
	return nil
}

func (s *Server) handshake(ctx context.Context, tc *tls.Conn) error {
	if tc.ConnectionState().HandshakeComplete {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.readHeader)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("http1: tls handshake: %w", err)
	}
	return nil
}

// track adds (or removes) sc to the connections Shutdown and Close see;
// adding fails once the server is shutting down.
func (s *Server) track(sc *serverConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, sc)
		return true
	}
	if s.shutdown.Load() {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

// Shutdown stops serving gracefully: idle connections are closed at once,
// connections in a request close once its response is written (or the
// handler hijacks them). It returns when none is left, or ctx's error
// when ctx ends first; Close then cuts the rest. Hijacked connections
// are the handler's: they are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("http1: shutdown: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and returns how
// many connections are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		if sc.state.CompareAndSwap(connIdle, connClosed) {
			_ = sc.rwc.Close()
		}
	}
	return len(s.conns)
}

// Close closes every connection now, in a request or not; their
// handlers see read and write errors. It does not wait for handlers.
func (s *Server) Close() error {
	s.shutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		if sc.state.Swap(connClosed) != connHijacked {
			_ = sc.rwc.Close()
		}
	}
	return nil
}

// Connection states, for Shutdown.
const (
	connIdle int32 = iota // waiting for (the first byte of) a request
	connActive
	connHijacked
	connClosed
)

// serverConn is one downstream connection and its loop.
type serverConn struct {
	srv    *Server
	rwc    net.Conn
	h      http.Handler
	ctx    context.Context
	remote string
	tls    *tls.ConnectionState
	cr     serverConnReader
	br     *bufio.Reader
	bw     *bufio.Writer
	hdr    http.Header // the response header map, cleared per request
	// values is ctx without its cancellation, for requestContext; cur is
	// the request being served, which ctx's end cancels.
	values context.Context
	cur    atomic.Pointer[serverResponse]
	head   requestHead // the request head, reused (request.go)
	// wait is the waitConn under rwc once found, nil before or when none;
	// pipelined: the client sent a request before the previous response
	// (holdResponse).
	wait      *waitConn
	pipelined bool
	state     atomic.Int32
	watch     serverWatch
	werr      error // first write error; the connection is not reused
}

// serve is the connection loop: read a request, run the handler, finish
// the response, again while the connection may be reused.
func (sc *serverConn) serve() {
	s := sc.srv
	sc.cr.c, sc.cr.limit = sc.rwc, -1
	sc.br = s.getReader(&sc.cr)
	sc.bw = s.getWriter(sc)
	sc.hdr = make(http.Header, 8)
	sc.watch.init(sc)
	hijacked := false
	defer func() {
		if !hijacked {
			if sc.wait != nil {
				_ = sc.wait.flush() // a held last response
			}
			_ = sc.rwc.Close()
			s.readerPool.Put(sc.br)
			sc.bw.Reset(nil)
			s.writerPool.Put(sc.bw)
		}
	}()
	for {
		w, err := sc.readRequest()
		if err != nil {
			sc.badRequest(err)
			return
		}
		keep := sc.run(w)
		if w.hijacked {
			hijacked = true
			return
		}
		if !keep || s.shutdown.Load() {
			return
		}
	}
}

// run serves one request and reports whether the connection may serve
// another.
func (sc *serverConn) run(w *serverResponse) (keep bool) {
	sc.cur.Store(w)
	defer sc.cur.Store(nil)
	if err := sc.ctx.Err(); err != nil {
		w.ctx.cancel(err)
	}
	*w.req = *w.req.WithContext(&w.ctx) // in place: the copy stays on the stack
	sc.watch.start(w)
	defer func() {
		if p := recover(); p != nil {
			sc.watch.stop()
			w.ctx.cancel(context.Canceled)
			keep = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				sc.srv.log.Error("handler panic", "remote", sc.remote, "panic", p, "stack", string(buf))
			}
			if !w.hijacked {
				w.abort()
			}
		}
	}()
	sc.h.ServeHTTP(w, w.req)
	if w.hijacked {
		w.ctx.cancel(context.Canceled)
		return false
	}
	sc.watch.stop()
	keep = w.finish()
	w.ctx.cancel(context.Canceled)
	return keep && sc.watch.alive()
}

// readRequest waits for the next request (IdleTimeout) and reads its
// header (ReadHeaderTimeout, MaxHeaderBytes).
func (sc *serverConn) readRequest() (*serverResponse, error) {
	s := sc.srv
	if sc.br.Buffered() == 0 && !sc.cr.hasByte {
		if !sc.state.CompareAndSwap(connActive, connIdle) && sc.state.Load() != connIdle {
			return nil, net.ErrClosed
		}
		if s.shutdown.Load() {
			return nil, net.ErrClosed
		}
		if err := sc.awaitHeld(); err != nil {
			return nil, err
		}
		if sc.br.Buffered() == 0 {
			_ = sc.rwc.SetReadDeadline(time.Now().Add(s.idle))
			if _, err := sc.br.Peek(1); err != nil {
				return nil, err
			}
		}
	}
	if !sc.state.CompareAndSwap(connIdle, connActive) && sc.state.Load() != connActive {
		return nil, net.ErrClosed // closed by Shutdown while idle
	}
	if req := sc.head.parse(sc.br, s.maxHeader); req != nil {
		// The whole head was buffered: no read, so no header deadline.
		// The fast path took only valid fields and one valid Host.
		_ = sc.rwc.SetReadDeadline(time.Time{})
		if err := checkExpect(req); err != nil {
			return nil, err
		}
		req.RemoteAddr = sc.remote
		req.TLS = sc.tls
		return newServerResponse(sc, req), nil
	}
	_ = sc.rwc.SetReadDeadline(time.Now().Add(s.readHeader))
	// The reader stops a little past the limit (net/http's slack), so that
	// a header just over it is told apart from a broken one.
	buffered := int64(sc.br.Buffered())
	sc.cr.limit, sc.cr.consumed = int64(s.maxHeader)+4096, 0
	req, err := http.ReadRequest(sc.br)
	if err != nil {
		if sc.cr.limit <= 0 {
			return nil, errHeaderTooLarge
		}
		return nil, err
	}
	sc.cr.limit = -1
	_ = sc.rwc.SetReadDeadline(time.Time{})
	headerBytes := buffered + sc.cr.consumed - int64(sc.br.Buffered())
	if err := checkRequest(req, headerBytes > int64(s.maxHeader)); err != nil {
		return nil, err
	}
	req.RemoteAddr = sc.remote
	req.TLS = sc.tls
	return newServerResponse(sc, req), nil
}

// holdResponse, called as a response that keeps the connection ends,
// holds its bytes for the read of the next request (waitConn): that read
// sends them and then waits for readiness instead of reading first, which
// answers EAGAIN for every request of a client that waits for its
// response before sending the next (one syscall per request). A client
// that pipelines may have sent its next request before the response went
// out; its readiness is not reported again, so the wait is bounded
// (awaitHeld) and the connection stops holding once that is seen.
func (sc *serverConn) holdResponse() {
	if sc.wait == nil {
		// Found late: a layer may expose it only once it is transparent.
		sc.wait = waitConnOf(sc.rwc)
	}
	switch {
	case sc.wait == nil || sc.pipelined || sc.srv.shutdown.Load():
	case sc.br.Buffered() > 0 || sc.cr.hasByte:
		sc.pipelined = true
	default:
		sc.wait.Hold()
	}
}

// awaitHeld sends a held response and waits up to serverHeldWait for the
// next request. Past that it returns nil with nothing read: the caller
// reads as usual.
func (sc *serverConn) awaitHeld() error {
	if sc.wait == nil || !sc.wait.holding() {
		return nil
	}
	_ = sc.rwc.SetReadDeadline(time.Now().Add(serverHeldWait))
	_, err := sc.br.Peek(1)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if sc.wait.readable() {
		sc.pipelined = true // it came before the response: no edge for it
	}
	return nil
}

// errHeaderTooLarge is a request header over MaxHeaderBytes.
var errHeaderTooLarge = errors.New("http1: request header too large")

// statusError is a bad request answered with code.
type statusError struct {
	code int
	text string
}

func (e *statusError) Error() string { return fmt.Sprintf("http1: %d %s", e.code, e.text) }

// checkRequest applies net/http's server checks to a parsed request.
func checkRequest(req *http.Request, tooLarge bool) error {
	if tooLarge {
		return errHeaderTooLarge
	}
	if req.ProtoMajor != 1 {
		return &statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	// http.ReadRequest moved Host to req.Host (and refused two): an empty
	// one is taken as missing.
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return &statusError{http.StatusBadRequest, "missing required Host header"}
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return &statusError{http.StatusBadRequest, "malformed Host header"}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return &statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return checkExpect(req)
}

// checkExpect refuses an expectation other than 100-continue (417).
func checkExpect(req *http.Request) error {
	if e := req.Header["Expect"]; len(e) > 0 && !(len(e) == 1 && strings.EqualFold(e[0], "100-continue")) {
		return &statusError{http.StatusExpectationFailed, ""}
	}
	return nil
}

// badRequest answers a request that could not be read, as net/http does,
// and lets the loop close the connection. Timeouts and closed
// connections get no answer.
func (sc *serverConn) badRequest(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	code, text := http.StatusBadRequest, ""
	var se *statusError
	switch {
	case errors.Is(err, errHeaderTooLarge):
		code = http.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &se):
		code, text = se.code, se.text
	}
	sc.srv.log.Debug("bad request", "remote", sc.remote, "status", code, "error", err)
	body := http.StatusText(code)
	if text != "" {
		body += ": " + text
	}
	_ = sc.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	bw := sc.bw
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	_ = bw.Flush()
}

func (s *Server) getReader(r io.Reader) *bufio.Reader {
	if br, ok := s.readerPool.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, 4<<10)
}

func (s *Server) getWriter(w io.Writer) *bufio.Writer {
	if bw, ok := s.writerPool.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, 4<<10)
}

// Write is the bufio.Writer's sink: it remembers the first error, after
// which the connection is not reused.
func (sc *serverConn) Write(p []byte) (int, error) {
	n, err := sc.rwc.Write(p)
	if err != nil && sc.werr == nil {
		sc.werr = err
	}
	return n, err
}

// serverConnReader is the bufio.Reader's source: it counts header bytes
// against MaxHeaderBytes and replays the byte a watcher read.
type serverConnReader struct {
	c        net.Conn
	limit    int64 // bytes left for the header; negative: unlimited
	consumed int64 // bytes read while limited
	hasByte  bool
	b        [1]byte
}

func (r *serverConnReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.hasByte {
		p[0] = r.b[0]
		r.hasByte = false
		return 1, nil
	}
	if r.limit == 0 {
		return 0, io.EOF
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.Read(p)
	if r.limit > 0 {
		r.limit -= int64(n)
		r.consumed += int64(n)
	}
	return n, err
}

// serverDate is the Date header value of one second.
type serverDate struct {
	sec int64
	b   []byte
}

// dateValue returns the Date header value for now, formatted once per
// second.
func (s *Server) dateValue() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &serverDate{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	s.date.Store(d)
	return d.b
}
