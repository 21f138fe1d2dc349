package http1

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// serverAbortDeadline is a read deadline in the past: it ends a
// watcher's pending read at once.
var serverAbortDeadline = time.Unix(1, 0)

// serverWatch notices a client that goes away while its request runs,
// without a goroutine per request. net/http starts a background read
// for every request and aborts it at the end (a goroutine, two deadline
// changes and a wake-up each time). Here one timer per connection is
// reset for each request; only a request still running after WatchAfter
// (typically one waiting on a slow upstream) gets a read of the
// connection, on the timer's goroutine. That read waits until the
// request body has been read to its end (before that, the body reads
// would see a close anyway); it then cancels the request's context on
// EOF or an error, as net/http does (the proxy records DC), or keeps the
// byte it got, the start of a pipelined request, for the next read.
//
// The loop's goroutine owns the timer goroutine: stop waits for it.
type serverWatch struct {
	sc    *serverConn
	after time.Duration
	timer *time.Timer
	fired chan struct{} // one signal per timer callback, at its end
	armed bool          // the timer was reset for the current request

	mu       sync.Mutex
	cond     sync.Cond
	active   bool            // a request runs and may be watched
	body     bool            // its body was read to the end
	watching bool            // a callback reads the connection
	gone     bool            // the client closed or broke the connection
	rctx     *requestContext // the watched request's context
}

func (w *serverWatch) init(sc *serverConn) {
	w.sc = sc
	w.after = max(sc.srv.watchAfter, 0)
	w.fired = make(chan struct{}, 1)
	w.cond.L = &w.mu
}

// start arms the watch for the request of resp.
func (w *serverWatch) start(resp *serverResponse) {
	w.mu.Lock()
	w.active, w.body, w.rctx = true, resp.body.sawEOF.Load(), &resp.ctx
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.after, w.fire)
	} else {
		w.timer.Reset(w.after)
	}
	w.armed = true
}

// bodyDone is called when the request body hit EOF.
func (w *serverWatch) bodyDone() {
	w.mu.Lock()
	w.body = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// stop ends the watch of the current request and waits for a callback
// that started: afterwards the loop alone reads the connection.
func (w *serverWatch) stop() {
	if !w.armed {
		return
	}
	w.armed = false
	w.mu.Lock()
	w.active, w.rctx = false, nil
	if w.watching {
		_ = w.sc.rwc.SetReadDeadline(serverAbortDeadline)
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	if !w.timer.Stop() {
		<-w.fired
	}
}

// alive reports whether the connection may serve another request.
func (w *serverWatch) alive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.gone
}

// fire runs on the timer's goroutine once a request has run for
// WatchAfter.
func (w *serverWatch) fire() {
	defer func() { w.fired <- struct{}{} }()
	w.mu.Lock()
	for w.active && !w.body {
		w.cond.Wait()
	}
	if !w.active {
		w.mu.Unlock()
		return
	}
	w.watching = true
	w.mu.Unlock()
	cr := &w.sc.cr
	n, err := w.sc.rwc.Read(cr.b[:])
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watching = false
	switch {
	case n == 1:
		cr.hasByte = true
	case err == nil:
	case w.active:
		// The client went away (or broke the connection) mid-request.
		w.gone = true
		w.rctx.cancel(context.Canceled)
	case !errors.Is(err, os.ErrDeadlineExceeded):
		w.gone = true // closed just as stop aborted the read
	}
}
