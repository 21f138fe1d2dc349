package http1

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// serverBody is a request's body as the handler sees it. It answers
// Expect: 100-continue on the first read, tells the watcher when the body
// has been read to its end, and never reads past what the server allows:
// Close only marks it closed (net/http's server body drains on Close
// without bound); the server discards a bounded rest after the handler.
// Reads are serialised by mu; they may run on any goroutine (the proxy's
// upstream transport writes the body from its own).
type serverBody struct {
	w      *serverResponse
	rc     io.ReadCloser // from http.ReadRequest, reading the conn's buffer
	mu     sync.Mutex
	closed atomic.Bool
	sawEOF atomic.Bool
	read   atomic.Int64
}

func (b *serverBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.w.expectingBody {
		b.w.sendContinue()
	}
	n, err := b.rc.Read(p)
	b.read.Add(int64(n))
	if err == io.EOF {
		b.sawEOF.Store(true)
		b.w.sc.watch.bodyDone()
	}
	return n, err
}

// Close stops reads; the server deals with the rest.
func (b *serverBody) Close() error {
	b.closed.Store(true)
	return nil
}

// complete reports whether the whole body (if any) has been read.
func (b *serverBody) complete() bool { return b.rc == nil || b.sawEOF.Load() }

// tooBigToDrain reports, at header time, a body whose unread rest is
// known to be past what the server would discard (or that the handler
// closed early): the connection closes after the response.
func (b *serverBody) tooBigToDrain() bool {
	if b.rc == nil || b.sawEOF.Load() {
		return false
	}
	if b.closed.Load() {
		return true
	}
	cl := b.w.req.ContentLength
	return cl > 0 && cl-b.read.Load() > serverMaxDrain
}

// finish ends the body after the handler returned: it waits for a read
// in progress, then, when keep, discards up to serverMaxDrain of what the
// handler left unread. It reports whether the connection is in step for
// another request.
func (b *serverBody) finish(keep bool) bool {
	if b.rc == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed.Store(true)
	if b.sawEOF.Load() {
		return true
	}
	if !keep || (b.w.expectingBody && !b.w.continueSent()) {
		return false // never asked for: the client may not send it
	}
	sc := b.w.sc
	_ = sc.rwc.SetReadDeadline(time.Now().Add(sc.srv.readHeader))
	defer sc.rwc.SetReadDeadline(time.Time{})
	n, err := io.CopyN(io.Discard, b.rc, serverMaxDrain+1)
	b.read.Add(n)
	return err == io.EOF
}
