package http1

import (
	"context"
	"sync"
	"time"
)

// requestContext is a request's context, part of its serverResponse: it
// ends when the handler returns, when the watcher sees the client go or
// when the connection's context ends. Unlike context.WithCancel it costs
// no allocation of its own, its Done channel is made only when asked
// for, and it registers AfterFunc callbacks (the HTTP/1.1 client's
// interrupt, child contexts through context's afterFuncer path) in place
// of a children map per request.
type requestContext struct {
	// values answers Value and Deadline: the connection's context without
	// its cancellation (context.WithoutCancel), so that context.Cause and
	// child contexts see this context's state, not the connection's.
	values context.Context

	mu    sync.Mutex
	done  chan struct{} // made by the first Done
	err   error
	first registration    // the first AfterFunc registration
	more  []*registration // later ones, rare
}

// registration is one AfterFunc registration.
type registration struct {
	f    func()
	ctx  *requestContext
	live bool // registered, neither run nor stopped
}

var _ context.Context = (*requestContext)(nil)

// closedDone is the Done channel of a context that ended before anyone
// asked for its channel.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *requestContext) Deadline() (time.Time, bool) { return c.values.Deadline() }
func (c *requestContext) Value(key any) any           { return c.values.Value(key) }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedDone
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run in its own goroutine once c ends, as
// context.AfterFunc does; context uses it for children of c.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return stopNothing
	}
	a := &c.first
	if a.ctx != nil {
		a = &registration{}
		c.more = append(c.more, a)
	}
	*a = registration{f: f, ctx: c, live: true}
	return a.stop
}

func stopNothing() bool { return false }

// stop reports whether it kept f from running.
func (a *registration) stop() bool {
	a.ctx.mu.Lock()
	defer a.ctx.mu.Unlock()
	was := a.live
	a.live = false
	return was
}

// cancel ends c with err (the first call wins) and starts the callbacks
// still registered.
func (c *requestContext) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	var run []func()
	if c.first.live {
		run = append(run, c.first.f)
		c.first.live = false
	}
	for _, a := range c.more {
		if a.live {
			run = append(run, a.f)
			a.live = false
		}
	}
	c.mu.Unlock()
	for _, f := range run {
		go f()
	}
}

// AfterFuncer is a context that registers AfterFunc callbacks itself
// (context uses the same method for the children of such a context).
type AfterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// afterFunc is context.AfterFunc without its wrapper context when ctx
// registers callbacks itself.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(AfterFuncer); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}
