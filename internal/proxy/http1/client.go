package http1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// clientSyncBody is the largest request body (of known length) written
	// on the calling goroutine together with the head. Larger and
	// unknown-length bodies are written by a goroutine while the response
	// is read, so that an upstream answering before it has read the whole
	// body (413, 401, a full-duplex stream) cannot deadlock the exchange.
	clientSyncBody = 64 << 10
	// clientMaxHeaderBytes bounds a response head (each 1xx head too).
	clientMaxHeaderBytes = 1 << 20
	// clientMax1xx bounds informational responses before the final one.
	clientMax1xx = 16
	// clientCheckAfter: a connection idle at least this long is probed for
	// a close by the upstream before reuse. Younger ones are probed only
	// for requests that cannot be retried; the rest are retried on a fresh
	// connection if the upstream closed it meanwhile.
	clientCheckAfter = 250 * time.Millisecond
	// clientIdleTimeout is net/http.Transport's, which this client replaced.
	clientIdleTimeout = 90 * time.Second
	clientMaxIdle     = 1024
)

// SyncBody reports whether RoundTrip sends req's body (if any) on the
// calling goroutine: nothing then references req once RoundTrip has
// returned and the response body is closed.
func SyncBody(req *http.Request) bool {
	f := wireFramingOf(req)
	return f == wireNoBody || (f == wireLength && req.ContentLength <= clientSyncBody)
}

// ClientOptions configure a Client. Zero values are documented per field.
type ClientOptions struct {
	// Dial opens a connection to addr (host:port), TLS included when the
	// upstream wants it; it owns the connect timeout. An error wrapped in
	// a *net.OpError with Op "dial" is a connect failure to callers.
	// nil: a net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// IdleTimeout closes connections idle that long. 0: 90 s.
	IdleTimeout time.Duration
	// MaxIdlePerHost bounds idle connections kept per address; more are
	// closed when released. 0: 1024.
	MaxIdlePerHost int
	// DisableKeepAlives sends "Connection: close" and uses each
	// connection for one request (max_requests_per_connection: 1).
	DisableKeepAlives bool
	// MaxRequestsPerConnection closes a connection after that many
	// requests (Envoy's max_requests_per_connection), the last of them
	// sent with "Connection: close". 0: no limit; 1 is DisableKeepAlives.
	MaxRequestsPerConnection uint32
}

// Client is an HTTP/1.1 client with a pool of connections per upstream
// address (the request URL's host). RoundTrip writes the request and reads
// the response head on the calling goroutine; the response body returns
// the connection to the pool when it reaches EOF with keep-alive intact.
// Upgrades (101) are not supported: send them through net/http.
//
// A Client is safe for concurrent use. Close releases idle connections;
// requests in flight finish and then close theirs.
type Client struct {
	opts  ClientOptions
	hosts atomic.Pointer[map[string]*hostPool] // copy on write
	mu    sync.Mutex                           // serialises writers of hosts, closed
	// closed: connections are no longer pooled.
	closed atomic.Bool
}

var _ http.RoundTripper = (*Client)(nil)

// NewClient returns a client with empty pools.
func NewClient(opts ClientOptions) *Client {
	if opts.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = clientIdleTimeout
	}
	if opts.MaxIdlePerHost <= 0 {
		opts.MaxIdlePerHost = clientMaxIdle
	}
	if opts.MaxRequestsPerConnection == 1 {
		opts.DisableKeepAlives = true
	}
	c := &Client{opts: opts}
	m := map[string]*hostPool{}
	c.hosts.Store(&m)
	return c
}

// hostPool returns the pool of addr, creating it on first use.
func (c *Client) hostPool(addr string) *hostPool {
	if hp := (*c.hosts.Load())[addr]; hp != nil {
		return hp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.hosts.Load()
	if hp := old[addr]; hp != nil {
		return hp
	}
	hp := &hostPool{c: c, addr: addr}
	m := make(map[string]*hostPool, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[addr] = hp
	c.hosts.Store(&m)
	return hp
}

// Retain closes the idle connections of every address keep rejects and
// forgets its pool (connections in flight to it close when done), so
// that endpoints removed from the config do not hold connections until
// the idle timeout.
func (c *Client) Retain(keep func(addr string) bool) {
	c.mu.Lock()
	old := *c.hosts.Load()
	m := make(map[string]*hostPool, len(old))
	var drop []*hostPool
	for k, v := range old {
		if keep(k) {
			m[k] = v
		} else {
			drop = append(drop, v)
		}
	}
	if len(drop) > 0 {
		c.hosts.Store(&m)
	}
	c.mu.Unlock()
	for _, hp := range drop {
		hp.close()
	}
}

// Prune forgets the pool of every address that holds no idle connection
// and that keep rejects (keep is asked only about such pools). A pool
// holds nothing else, but addresses come and go with endpoints, so a
// long-lived client's map would otherwise keep every address it ever
// reached. A connection in use to a forgotten address is closed after its
// request instead of pooled. It returns how many pools it forgot.
func (c *Client) Prune(keep func(addr string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.hosts.Load()
	var drop []string
	for k, hp := range old {
		if hp.idleCount() > 0 || keep(k) {
			continue
		}
		hp.mu.Lock()
		if len(hp.idle) == 0 { // still: a request may have released one
			hp.closed = true // a connection released to it now closes
			drop = append(drop, k)
		}
		hp.mu.Unlock()
	}
	if len(drop) == 0 {
		return 0
	}
	m := make(map[string]*hostPool, len(old)-len(drop))
	for k, hp := range old {
		m[k] = hp
	}
	for _, k := range drop {
		delete(m, k)
	}
	c.hosts.Store(&m)
	return len(drop)
}

// CloseIdleConnections closes the connections now idle.
func (c *Client) CloseIdleConnections() {
	for _, hp := range *c.hosts.Load() {
		hp.closeIdle()
	}
}

// Close closes idle connections; from now on connections are closed
// after their request instead of pooled. RoundTrip keeps working.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.Retain(func(string) bool { return false })
	return nil
}

// RoundTrip sends req to req.URL.Host over a pooled connection. It
// follows http.RoundTripper: it always closes req.Body, does not modify
// req and returns an error only when no response was read. Informational
// (1xx) responses other than 101 go to the request's httptrace
// Got1xxResponse hook and are otherwise skipped. Cancelling req's context
// interrupts the exchange at any point, body reading included.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.RoundTripInto(req, nil)
}

// RoundTripInto is RoundTrip, but a common response (see responseHead)
// is written into into, whose Header map is cleared and reused, instead
// of a new Response: the caller owns into and must not reuse it while it
// still uses the response. nil into is RoundTrip.
func (c *Client) RoundTripInto(req *http.Request, into *http.Response) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		closeBody(req)
		return nil, errors.New("http1: round trip: request has no host")
	}
	ctx := req.Context()
	hp := c.hostPool(req.URL.Host)
	fresh := false
	for {
		cc, err := hp.get(ctx, fresh, !retryable(req))
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := cc.roundTrip(ctx, req, into)
		if err == nil {
			return resp, nil
		}
		var stale *staleConnError
		if fresh || !errors.As(err, &stale) {
			return nil, err
		}
		// The upstream closed an idle connection before answering (its
		// idle timeout raced our reuse): once more on a new one, as
		// net/http does.
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("http1: retry: %w", gerr)
			}
			r := *req
			r.Body = body
			req = &r
		}
		fresh = true
	}
}

// retryable reports whether req may be sent again after the upstream
// closed a reused connection without answering: its body can be replayed
// and it is idempotent (RFC 9110 section 9.2.2), as net/http requires.
func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// staleConnError is a reused connection that failed before the upstream
// sent any byte of a response to a request that may be sent again.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// hostPool holds the idle connections to one address, most recently used
// last.
type hostPool struct {
	c    *Client
	addr string

	mu     sync.Mutex
	idle   []*clientConn
	closed bool
}

// get returns an idle connection that still looks alive, or dials one.
// fresh: always dial. check: probe even a recently used connection.
func (hp *hostPool) get(ctx context.Context, fresh, check bool) (*clientConn, error) {
	for !fresh {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			break
		}
		cc := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		cc.idleTimer.Stop()
		idleFor := time.Since(cc.idleSince)
		if idleFor >= hp.c.opts.IdleTimeout ||
			((check || idleFor >= clientCheckAfter) && !cc.alive()) {
			cc.close()
			continue
		}
		cc.reused = true
		return cc, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("http1: dial %s: %w", hp.addr, err)
	}
	nc, err := hp.c.opts.Dial(ctx, hp.addr)
	if err != nil {
		return nil, err // a *net.OpError "dial": a connect failure
	}
	return newClientConn(hp, nc), nil
}

// put makes cc idle, or closes it if the pool is full or closed.
func (hp *hostPool) put(cc *clientConn) {
	hp.mu.Lock()
	cc.idleSince = time.Now() // under mu: idleExpired reads it
	if hp.closed || hp.c.closed.Load() || len(hp.idle) >= hp.c.opts.MaxIdlePerHost {
		hp.mu.Unlock()
		cc.close()
		return
	}
	hp.idle = append(hp.idle, cc)
	// Arm the timer before unlocking: once cc is in idle, get may take it
	// and stop the timer (a race if armed after). A timer that fires
	// meanwhile waits for mu in idleExpired.
	if cc.idleTimer == nil {
		cc.idleTimer = time.AfterFunc(hp.c.opts.IdleTimeout, cc.idleExpired)
	} else {
		cc.idleTimer.Reset(hp.c.opts.IdleTimeout)
	}
	hp.mu.Unlock()
}

// remove takes cc out of the idle list; false if it was not idle.
func (hp *hostPool) remove(cc *clientConn) bool {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	i := slices.Index(hp.idle, cc)
	if i < 0 {
		return false
	}
	hp.idle = slices.Delete(hp.idle, i, i+1)
	return true
}

func (hp *hostPool) idleCount() int {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return len(hp.idle)
}

func (hp *hostPool) closeIdle() {
	hp.mu.Lock()
	idle := hp.idle
	hp.idle = nil
	hp.mu.Unlock()
	for _, cc := range idle {
		cc.close()
	}
}

func (hp *hostPool) close() {
	hp.mu.Lock()
	hp.closed = true
	hp.mu.Unlock()
	hp.closeIdle()
}

// got1xx hands an informational response to the request's trace hook.
func got1xx(ctx context.Context, resp *http.Response) error {
	if t := httptrace.ContextClientTrace(ctx); t != nil && t.Got1xxResponse != nil {
		return t.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header))
	}
	return nil
}

// wireCopyBuffers are the copy buffers of chunked request bodies.
var wireCopyBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
