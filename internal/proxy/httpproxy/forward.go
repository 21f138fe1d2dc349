package httpproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// forwardState is the part of an exchange that forwarding needs. It lives
// inside the exchange so that building the upstream request allocates
// only what the transport keeps: the request and its header map.
type forwardState struct {
	out   http.Request // the upstream request (attempt 1)
	url   url.URL      // out.URL
	ctx   upstreamCtx  // out's context
	body  guardedBody  // out.Body when the request has one
	reqID [1]string    // x-request-id value
	// trace forwards 1xx responses; mu guards its hook and done, set once
	// RoundTrip has returned, against calls from the transport's goroutines.
	trace httptrace.ClientTrace
	mu    sync.Mutex
	done  bool
}

// upstreamCtx is the upstream request's context: the route context that
// also answers the exchange (InfoFrom, the round tripper) and its 1xx
// trace. Being part of the exchange, it replaces the two context.WithValue
// layers (and WithClientTrace's) that each request would otherwise add.
type upstreamCtx struct {
	context.Context // the route context (exchange.ctx)
	ex              *exchange
}

// AfterFunc lets the HTTP/1.1 client register its interrupt with the
// server's request context directly (http1.AfterFuncer).
func (c *upstreamCtx) AfterFunc(f func()) (stop func() bool) {
	if a, ok := c.Context.(http1.AfterFuncer); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(c.Context, f)
}

func (c *upstreamCtx) Value(key any) any {
	switch key {
	case exchangeKey{}:
		return c.ex
	case clientTraceKey:
		return c.ex.clientTrace()
	}
	return c.Context.Value(key)
}

// clientTraceKey is the context key under which net/http/httptrace keeps a
// ClientTrace (its type is unexported), learned once by letting
// httptrace.ContextClientTrace look it up in a probe context.
// TestInformational fails if this stops finding the trace.
var clientTraceKey = func() any {
	var p keyProbe
	httptrace.ContextClientTrace(&p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any { p.key = key; return nil }

// guardedBody is the downstream request body as the upstream request
// carries it. Close only marks it closed: the transport closes request
// bodies even when it fails before reading them, and closing the server's
// body early can hang a request waiting for 100-continue; reads after
// Close fail, because the transport's writer may outlive the handler.
type guardedBody struct {
	rc     io.ReadCloser
	closed atomic.Bool
}

var errBodyClosed = errors.New("httpproxy: read of a request body after the exchange ended")

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	return b.rc.Read(p)
}

func (b *guardedBody) Close() error {
	b.closed.Store(true)
	return nil
}

// forward sends the request upstream (roundTripper: endpoint pick,
// retries) and streams the response back.
func (h *Handler) forward(ex *exchange, in *http.Request) {
	out, upType := h.upstreamRequest(ex, in)
	if out.Body != nil {
		defer out.Body.Close()
	}
	resp, err := roundTripper{}.RoundTrip(out)
	f := &ex.fwd
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	if err != nil {
		h.upstreamError(ex, out, err)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		h.switchProtocols(ex, out, resp, upType)
		return
	}
	stripHopHeaders(resp.Header)
	modifyResponse(ex, resp)
	dst := ex.w.Header()
	addHeader(dst, resp.Header)
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = append(dst["Trailer"], strings.Join(keys, ", "))
	}
	ex.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(ex.w)
	if err := copyBody(ex.w, rc, resp); err != nil {
		_ = resp.Body.Close()
		// The response is half sent: only aborting the downstream stream
		// tells the client. ServeHTTP records why (UT, DC or UC).
		panic(http.ErrAbortHandler)
	}
	_ = resp.Body.Close() // fills resp.Trailer
	if len(resp.Trailer) == 0 {
		return
	}
	// Flush so that the server sends the body chunked with trailers
	// rather than computing a Content-Length for a short body.
	_ = rc.Flush()
	if len(resp.Trailer) == announced {
		addHeader(dst, resp.Trailer)
		return
	}
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
}

// upstreamRequest builds the upstream request from in as Envoy's router
// does: hop-by-hop headers removed (a WebSocket upgrade keeps its
// Connection and Upgrade), path and authority rewritten, x-forwarded-proto
// set when absent, x-request-id, route and cluster header mutations. The
// header map is new; its values are shared with in, capped so that an
// append copies. upType is the upgrade asked for ("" for none).
func (h *Handler) upstreamRequest(ex *exchange, in *http.Request) (out *http.Request, upType string) {
	f := &ex.fwd
	f.ctx = upstreamCtx{Context: ex.ctx, ex: ex}
	// WithContext's copy does not escape: the request lives in the exchange.
	f.out = *in.WithContext(&f.ctx)
	out = &f.out
	f.url = *in.URL
	out.URL = &f.url
	out.URL.Scheme = "http"
	out.URL.User = nil
	out.RequestURI = ""
	out.Close = false
	switch {
	case in.ContentLength == 0:
		out.Body = nil // lets the transport retry a request on a stale connection
	case in.Body != nil:
		f.body.rc = in.Body
		out.Body = &f.body
	}

	fwd := ex.route.rt.Forward
	switch {
	case fwd.PrefixRewrite != "":
		// Envoy swaps "the matched prefix (or path)": an exact or regex
		// match matched the whole path, so all of it is replaced.
		p := in.URL.EscapedPath()
		prefix := p
		if ex.route.match.kind == runtime.PathPrefix {
			prefix = ex.route.match.path
		}
		setPath(out.URL, p, prefix, fwd.PrefixRewrite)
	case fwd.RegexRewrite != nil:
		rr := fwd.RegexRewrite
		setPath(out.URL, rr.Pattern.ReplaceAllString(in.URL.EscapedPath(), rr.Template), "", "")
	}

	// Room for what is added below: x-forwarded-proto, x-request-id,
	// x-envoy-attempt-count (transport.go), user-agent.
	if ex.hdr == nil {
		ex.hdr = make(http.Header, len(in.Header)+4)
	}
	hd := ex.hdr
	upstreamHeader(hd, in.Header)
	out.Header = hd
	if teTrailers(in.Header["Te"]) {
		hd["Te"] = trailersValue // gRPC needs it (RFC 9110 section 10.1.4)
	}
	if ex.upgrade && headerHasToken(in.Header["Connection"], "upgrade") {
		if v := in.Header["Upgrade"]; len(v) > 0 {
			upType = v[0]
			hd["Connection"] = upgradeValue
			hd["Upgrade"] = v[:1:1]
		}
	}
	if hd[hdrForwardProto] == nil {
		hd[hdrForwardProto] = protoHTTP
		if in.TLS != nil {
			hd[hdrForwardProto] = protoHTTPS
		}
	}
	if v := hd[hdrRequestID]; len(v) == 0 || v[0] != ex.info.RequestID {
		f.reqID[0] = ex.info.RequestID
		hd[hdrRequestID] = f.reqID[:1:1]
	}
	if _, ok := hd["User-Agent"]; !ok {
		hd["User-Agent"] = emptyValue // keeps Go's client from adding its own
	}
	host := in.Host
	if fwd.HostRewrite != "" {
		host = fwd.HostRewrite
	}
	ex.route.reqHdr.apply(hd, &host)
	ex.dest.reqHdr.apply(hd, &host)
	out.Host = host
	return out, upType
}

// clientTrace returns the request's trace, binding its hook on first use:
// the HTTP/1.1 client looks the trace up only when a 1xx arrives, so most
// requests never pay for the method value.
func (ex *exchange) clientTrace() *httptrace.ClientTrace {
	f := &ex.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.trace.Got1xxResponse == nil {
		f.trace.Got1xxResponse = ex.informational
	}
	return &f.trace
}

// informational forwards a 1xx response (103 Early Hints, 102) while the
// request is in flight; the transport may call it from its own goroutine.
func (ex *exchange) informational(code int, header textproto.MIMEHeader) error {
	f := &ex.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return nil // the final response owns the header map now
	}
	dst := ex.w.Header()
	addHeader(dst, http.Header(header))
	ex.w.WriteHeader(code)
	clear(dst) // WriteHeader does not clear after a 1xx
	return nil
}

// setPath sets u's path to the escaped path p with prefix replaced by
// replacement (rewritePath).
func setPath(u *url.URL, p, prefix, replacement string) {
	esc, unesc := rewritePath(p, prefix, replacement)
	u.Path = unesc
	u.RawPath = ""
	if esc != unesc {
		u.RawPath = esc
	}
}

func modifyResponse(ex *exchange, resp *http.Response) {
	ex.route.respHdr.apply(resp.Header, nil)
	ex.dest.respHdr.apply(resp.Header, nil)
	ex.up.setCookie(resp.Header)
}

// addHeader adds src's values to dst, sharing src's value slices where
// dst has none (the response's header map is ours to give away).
func addHeader(dst, src http.Header) {
	for k, vv := range src {
		if old := dst[k]; len(old) > 0 {
			dst[k] = append(old[:len(old):len(old)], vv...)
		} else {
			dst[k] = vv
		}
	}
}

// bufferedBody is implemented by response bodies that know how much of
// the body has arrived: Buffered returns the number of bytes a Read can
// return without waiting for the network (0: the next Read may block).
// Bodies without it are assumed to have more waiting when a Read fills
// the whole buffer.
type bufferedBody interface {
	Buffered() int
}

// copyBuffers recycle body copy buffers; arrays travel by pointer, so Get
// and Put do not allocate.
var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyBody streams resp's body to w. Each part is forwarded as soon as it
// arrives, as Envoy does (a stream or a slow upstream is never held in the
// server's buffer), but a flush is made only when the next upstream read
// would wait: a response whose body is complete (its Content-Length
// reached, or EOF with the data) goes out with the headers in one write
// when the handler returns.
func copyBody(w io.Writer, rc *http.ResponseController, resp *http.Response) error {
	bp := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(bp)
	buf := bp[:]
	body := resp.Body
	left := resp.ContentLength // -1: unknown
	bb, _ := body.(bufferedBody)
	if bb != nil && left != 0 && bb.Buffered() == 0 {
		_ = rc.Flush() // the body is not here yet: send the headers now
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if left > 0 {
				left -= int64(n)
			}
			if rerr == nil && left != 0 && wouldBlock(bb, n, len(buf)) {
				_ = rc.Flush() // errors surface on the next write
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return rerr
		}
	}
}

// wouldBlock guesses whether the next read of a body that just returned n
// bytes into a buffer of size max would wait for the network.
func wouldBlock(bb bufferedBody, n, max int) bool {
	if bb != nil {
		return bb.Buffered() == 0
	}
	return n < max
}

// switchProtocols completes a WebSocket upgrade the upstream accepted: it
// takes over the downstream connection, sends the 101 and copies bytes
// both ways until both directions end, one fails, or the route context
// ends (which closes the upstream).
func (h *Handler) switchProtocols(ex *exchange, out *http.Request, resp *http.Response, upType string) {
	modifyResponse(ex, resp)
	resType := ""
	if headerHasToken(resp.Header["Connection"], "upgrade") {
		resType = resp.Header.Get("Upgrade")
	}
	if !strings.EqualFold(upType, resType) || upType == "" {
		_ = resp.Body.Close()
		h.upstreamError(ex, out, errors.New("upgrade: upstream switched to "+quote(resType)+" when "+quote(upType)+" was asked for"))
		return
	}
	backConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		h.upstreamError(ex, out, errors.New("upgrade: the 101 response body is not writable"))
		return
	}
	defer backConn.Close()
	conn, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		h.upstreamError(ex, out, errors.New("upgrade: take over the downstream connection: "+err.Error()))
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(out.Context(), func() { _ = backConn.Close() })
	defer stop()

	dst := ex.w.Header()
	addHeader(dst, resp.Header)
	resp.Header = dst
	resp.Body = nil // Write sends the head only; the body is backConn
	ex.wrote, ex.info.Status = true, http.StatusSwitchingProtocols
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	var user io.Reader = conn
	if brw.Reader.Buffered() > 0 {
		user = brw.Reader // bytes the client sent right after its request
	}
	errc := make(chan error, 2)
	go splice(conn, backConn, errc)
	go splice(backConn, user, errc)
	if err := <-errc; err != nil {
		// One side failed: end both so that the other copy returns.
		_ = conn.Close()
		_ = backConn.Close()
	}
	<-errc
}

// splice copies src to dst, then half-closes dst when it can, and reports
// nil only when both succeeded.
func splice(dst io.Writer, src io.Reader, errc chan<- error) {
	if _, err := io.Copy(dst, src); err != nil {
		errc <- err
		return
	}
	if wc, ok := dst.(interface{ CloseWrite() error }); ok {
		errc <- wc.CloseWrite()
		return
	}
	errc <- errSpliceDone
}

var errSpliceDone = errors.New("httpproxy: upgraded connection copy done")

func quote(s string) string { return `"` + s + `"` }
