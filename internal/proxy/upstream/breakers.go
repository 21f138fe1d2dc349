package upstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// ErrOverflow is returned when a circuit breaker refuses a request: the
// caller answers 503 with response flag UO.
var ErrOverflow = errors.New("upstream: circuit breaker overflow")

// Envoy's default thresholds.
const (
	defaultMaxConnections = 1024
	defaultMaxPending     = 1024
	defaultMaxRequests    = 1024
	defaultMaxRetries     = 3
)

// Breakers are one cluster's circuit breakers (default priority). The
// counters live as long as the Cluster; thresholds follow its config.
type Breakers struct {
	limits  atomic.Pointer[runtime.CircuitBreakers]
	rq      atomic.Int64 // active requests
	retries atomic.Int64 // active retries

	mu      sync.Mutex // guards conns and waiters
	conns   int64      // HTTP/1.1 connections in use
	waiters []chan struct{}
}

func (b *Breakers) set(cb runtime.CircuitBreakers) {
	if cb.MaxConnections == 0 {
		cb.MaxConnections = defaultMaxConnections
	}
	if cb.MaxPendingRequests == 0 {
		cb.MaxPendingRequests = defaultMaxPending
	}
	if cb.MaxRequests == 0 {
		cb.MaxRequests = defaultMaxRequests
	}
	if cb.MaxRetries == 0 {
		cb.MaxRetries = defaultMaxRetries
	}
	b.limits.Store(&cb)
	// A raised limit admits waiters now.
	b.mu.Lock()
	for len(b.waiters) > 0 && b.conns < int64(cb.MaxConnections) {
		b.conns++
		b.handOff()
	}
	b.mu.Unlock()
}

// Limits returns the thresholds in force, defaults filled in.
func (b *Breakers) Limits() runtime.CircuitBreakers { return *b.limits.Load() }

// Acquire admits one upstream request (attempt). exclusive says the request
// holds a connection for itself (HTTP/1.1): it then counts against
// max_connections and waits in the pending queue, bounded by
// max_pending_requests, when all are busy. As in Envoy's connection pool, a
// pending request is not an active one: max_requests is checked when the
// request gets its connection (attachStreamToClient), so a queued request
// is served once the request ahead of it ends. It returns ErrOverflow, or
// ctx's error while waiting. On success the caller MUST call the returned
// release exactly once.
func (b *Breakers) Acquire(ctx context.Context, exclusive bool) (release func(), err error) {
	lim := b.limits.Load()
	if !exclusive {
		if !b.admitRequest(lim) {
			return nil, ErrOverflow
		}
		return b.releaseRequest, nil
	}
	b.mu.Lock()
	if b.conns < int64(lim.MaxConnections) {
		if !b.admitRequest(lim) {
			b.mu.Unlock()
			return nil, ErrOverflow
		}
		b.conns++
		b.mu.Unlock()
		return b.releaseConn, nil
	}
	if int64(len(b.waiters)) >= int64(lim.MaxPendingRequests) {
		b.mu.Unlock()
		return nil, ErrOverflow
	}
	ch := make(chan struct{}, 1)
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	select {
	case <-ch: // a connection slot was handed over
		if !b.admitRequest(b.limits.Load()) {
			b.releaseSlot()
			return nil, ErrOverflow
		}
		return b.releaseConn, nil
	case <-ctx.Done():
		b.mu.Lock()
		removed := false
		for i, w := range b.waiters {
			if w == ch {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				removed = true
				break
			}
		}
		b.mu.Unlock()
		if !removed { // a slot was handed over as we gave up: pass it on
			b.releaseSlot()
		}
		return nil, ctx.Err()
	}
}

// admitRequest counts one active request against max_requests; false on
// overflow.
func (b *Breakers) admitRequest(lim *runtime.CircuitBreakers) bool {
	if b.rq.Add(1) > int64(lim.MaxRequests) {
		b.rq.Add(-1)
		return false
	}
	return true
}

func (b *Breakers) releaseRequest() { b.rq.Add(-1) }

// releaseConn ends an exclusive request: the request, then its connection
// slot (so that a waiter handed the slot finds the request released).
func (b *Breakers) releaseConn() {
	b.rq.Add(-1)
	b.releaseSlot()
}

// releaseSlot frees a connection slot, or passes it to the first waiter.
func (b *Breakers) releaseSlot() {
	b.mu.Lock()
	if len(b.waiters) > 0 && b.conns <= int64(b.limits.Load().MaxConnections) {
		b.handOff() // the slot passes to the first waiter
	} else {
		b.conns--
	}
	b.mu.Unlock()
}

// handOff wakes the first waiter, which inherits a connection slot. b.mu
// is held.
func (b *Breakers) handOff() {
	ch := b.waiters[0]
	b.waiters = b.waiters[1:]
	ch <- struct{}{}
}

// Retry admits one retry against max_retries; the caller MUST call the
// returned release once the retry attempt ends. ok is false on overflow.
func (b *Breakers) Retry() (release func(), ok bool) {
	if b.retries.Add(1) > int64(b.limits.Load().MaxRetries) {
		b.retries.Add(-1)
		return nil, false
	}
	return func() { b.retries.Add(-1) }, true
}

// Active returns the requests, connections and pending requests in use.
func (b *Breakers) Active() (requests, conns, pending int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rq.Load(), b.conns, int64(len(b.waiters))
}
