package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

var (
	errRespHeadTooLarge = errors.New("http1: response head too large")
	errTooMany1xx       = errors.New("http1: too many informational responses")
	errUnexpected101    = errors.New("http1: unexpected 101 Switching Protocols")
	errBodyClosed       = errors.New("http1: read on closed response body")
)

// clientWriterWait is how long a finished exchange waits for its body
// writer before giving up on the connection.
const clientWriterWait = 50 * time.Millisecond

// aLongTimeAgo is the deadline that interrupts a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

var (
	clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// clientConn is one upstream connection. It is owned by one request at a
// time (or by the pool while idle); only interrupt and the idle timer run
// concurrently with the owner.
type clientConn struct {
	hp *hostPool
	nc net.Conn
	// wait, when the connection is TCP (under TLS or not) wrapped by
	// NewWaitConn, holds each request for the read of its response.
	wait *waitConn
	br   *bufio.Reader // reads through cc (counting)
	bw   *bufio.Writer // writes through cc (counting)
	// nread and nwritten count bytes through the connection: a failure with
	// nothing read since the request started is a stale connection.
	nread, nwritten int64
	readLimit       int64  // > 0: reading a response head; fail past it
	reused          bool   // served a request before this one
	requests        uint32 // requests sent on it, this one included
	// writer, while non-nil, receives the result of the goroutine writing
	// a large or streamed request body; bw is its until then.
	writer    chan error
	idleSince time.Time   // guarded by hp.mu while idle
	idleTimer *time.Timer // closes the connection after the idle timeout
	interrupt func()      // sets a past deadline; for context.AfterFunc
	head      responseHead
}

func newClientConn(hp *hostPool, nc net.Conn) *clientConn {
	if _, ok := nc.(*net.TCPConn); ok {
		nc = NewWaitConn(nc)
	}
	cc := &clientConn{hp: hp, nc: nc, wait: waitConnOf(nc)}
	cc.br = clientReaders.Get().(*bufio.Reader)
	cc.br.Reset(cc)
	cc.bw = clientWriters.Get().(*bufio.Writer)
	cc.bw.Reset(cc)
	cc.interrupt = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	return cc
}

func (cc *clientConn) Read(p []byte) (int, error) {
	if cc.readLimit > 0 && cc.nread >= cc.readLimit {
		return 0, errRespHeadTooLarge
	}
	n, err := cc.nc.Read(p)
	cc.nread += int64(n)
	return n, err
}

func (cc *clientConn) Write(p []byte) (int, error) {
	n, err := cc.nc.Write(p)
	cc.nwritten += int64(n)
	return n, err
}

// close closes the connection and recycles its buffers (the writer's only
// once the body goroutine is done with it).
func (cc *clientConn) close() {
	_ = cc.nc.Close()
	if cc.br != nil {
		cc.br.Reset(nil)
		clientReaders.Put(cc.br)
		cc.br = nil
	}
	if cc.bw != nil && cc.writer == nil {
		cc.bw.Reset(nil)
		clientWriters.Put(cc.bw)
		cc.bw = nil
	}
}

// alive reports whether an idle connection can carry a request: nothing
// unread is buffered and the upstream has neither closed it nor sent
// anything unasked (a 408, a TLS alert before closing).
func (cc *clientConn) alive() bool {
	return cc.br.Buffered() == 0 && peekAlive(cc.nc)
}

// idleExpired closes cc if it is still idle and has been for the idle
// timeout (the timer may fire just as the connection is reused).
func (cc *clientConn) idleExpired() {
	hp := cc.hp
	hp.mu.Lock()
	expired := time.Since(cc.idleSince) >= hp.c.opts.IdleTimeout
	hp.mu.Unlock()
	if expired && hp.remove(cc) {
		cc.close()
	}
}

// roundTrip runs one exchange on cc, which the caller got from the pool
// and which it gives back (or closes) through the response body.
func (cc *clientConn) roundTrip(ctx context.Context, req *http.Request, into *http.Response) (*http.Response, error) {
	stop := afterFunc(ctx, cc.interrupt)
	startR, startW := cc.nread, cc.nwritten
	cc.requests++
	opts := &cc.hp.c.opts
	noKeepAlive := opts.DisableKeepAlives ||
		(opts.MaxRequestsPerConnection > 0 && cc.requests >= opts.MaxRequestsPerConnection)
	f := wireFramingOf(req)
	syncBody := SyncBody(req)
	if syncBody && cc.wait != nil {
		// Head and body go out from the read of the response, which waits
		// for it before reading (waitConn): no EAGAIN read per exchange.
		cc.wait.Hold()
	}
	if err := wireWriteHead(cc.bw, req, f, noKeepAlive); err != nil {
		stop()
		closeBody(req)
		cc.close() // part of the head may be buffered
		return nil, err
	}
	if syncBody {
		err := wireWriteBody(cc.bw, req, f)
		closeBody(req)
		if err != nil {
			return nil, cc.fail(ctx, stop, req, err, startR, startW)
		}
	} else {
		if err := cc.bw.Flush(); err != nil {
			closeBody(req)
			return nil, cc.fail(ctx, stop, req, err, startR, startW)
		}
		// The body goes out while the response is read (clientSyncBody).
		// The goroutine ends when the body is written or fails: closing
		// the connection fails its writes, and the server closes the
		// downstream body it reads from when the handler returns.
		// It writes to the socket directly: the counters are the
		// reader's.
		wrote := make(chan error, 1)
		cc.writer = wrote
		bw := cc.bw
		bw.Reset(cc.nc)
		go func() {
			err := wireWriteBody(bw, req, f)
			closeBody(req)
			wrote <- err
		}()
	}
	resp, err := cc.readResponse(ctx, req, into)
	if err != nil {
		return nil, cc.fail(ctx, stop, req, err, startR, startW)
	}
	keep := !resp.Close && !req.Close && !noKeepAlive
	if resp.Body == http.NoBody {
		cc.finish(stop, keep)
		return resp, nil
	}
	resp.Body = &clientBody{cc: cc, body: resp.Body, stop: stop, keep: keep}
	return resp, nil
}

// readResponse reads the final response head, handing 1xx ones to the
// trace hook.
func (cc *clientConn) readResponse(ctx context.Context, req *http.Request, into *http.Response) (*http.Response, error) {
	for n := 0; ; n++ {
		cc.readLimit = cc.nread + clientMaxHeaderBytes
		var resp *http.Response
		var err error
		if _, perr := cc.br.Peek(1); perr == nil {
			resp = cc.head.parse(cc.br, req, into)
		}
		if resp == nil {
			resp, err = http.ReadResponse(cc.br, req)
		}
		cc.readLimit = 0
		switch {
		case err != nil:
			return nil, fmt.Errorf("http1: read response: %w", err)
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errUnexpected101
		case resp.StatusCode >= 200:
			return resp, nil
		case n == clientMax1xx:
			return nil, errTooMany1xx
		}
		if err := got1xx(ctx, resp); err != nil {
			return nil, fmt.Errorf("http1: 1xx response: %w", err)
		}
	}
}

// fail closes cc after a failed exchange and says why: the context's
// error when it ended, a staleConnError when the upstream closed a reused
// connection before answering a request that may be sent again.
func (cc *clientConn) fail(ctx context.Context, stop func() bool, req *http.Request, err error, startR, startW int64) error {
	stop()
	nothingRead := cc.nread == startR
	nothingWritten := cc.nwritten == startW
	async := cc.writer != nil
	cc.close()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("http1: round trip: %w", cerr)
	}
	var be *requestBodyError
	if errors.As(err, &be) || !cc.reused || !nothingRead || async {
		return err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if retryable(req) || (nothingWritten && replayable) {
		return &staleConnError{err}
	}
	return err
}

// finish ends the exchange: cc goes back to the pool when keep-alive
// holds, the request body is fully written and no cancellation touched
// the connection; otherwise it is closed.
func (cc *clientConn) finish(stop func() bool, keep bool) {
	if !stop() {
		keep = false // the deadline may be set
	}
	if cc.writer != nil {
		if done, err := cc.wroteBody(keep); done {
			cc.writer = nil
			cc.bw.Reset(cc)
			keep = keep && err == nil
		} else {
			keep = false // still sending: the upstream answered early
		}
	}
	if keep && cc.br.Buffered() == 0 {
		cc.hp.put(cc)
		return
	}
	cc.close()
}

// wroteBody returns the body writer's result. When the connection is to
// be kept it waits a little for the writer, which usually finished just
// before the upstream answered (net/http waits 50 ms the same way);
// otherwise done is false when the writer is still running.
func (cc *clientConn) wroteBody(wait bool) (done bool, err error) {
	select {
	case err = <-cc.writer:
		return true, err
	default:
	}
	if !wait {
		return false, nil
	}
	t := time.NewTimer(clientWriterWait)
	defer t.Stop()
	select {
	case err = <-cc.writer:
		return true, err
	case <-t.C:
		return false, nil
	}
}

// clientBody is a response body that gives its connection back at EOF.
// Close before EOF closes the connection (draining could take forever).
// Close may be called concurrently with Read.
type clientBody struct {
	cc   *clientConn
	body io.ReadCloser // http.ReadResponse's framing reader
	stop func() bool
	keep bool

	mu   sync.Mutex // held by Read while it uses cc
	done bool       // cc released; guarded by mu

	// imu orders Close's interrupt against Read's release, so that an
	// interrupt never lands on a connection back in the pool.
	imu      sync.Mutex
	released bool // Read reached EOF and owns the release; guarded by imu
	closed   atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		if b.closed.Load() {
			return 0, errBodyClosed
		}
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
		b.imu.Lock()
		b.released = true
		keep := b.keep && !b.closed.Load()
		b.imu.Unlock()
		b.cc.finish(b.stop, keep)
	case err != nil:
		b.done = true
		b.stop()
		b.cc.close()
		if b.closed.Load() {
			err = errBodyClosed
		}
	}
	return n, err
}

func (b *clientBody) Close() error {
	b.imu.Lock()
	if b.closed.Swap(true) {
		b.imu.Unlock()
		return nil
	}
	if !b.released {
		b.cc.interrupt() // a Read blocked on the connection returns
	}
	b.imu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		b.stop()
		b.cc.close()
	}
	return nil
}
