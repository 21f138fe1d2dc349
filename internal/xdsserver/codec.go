package xdsserver

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/protocodec"
)

// codec is the ADS server's protobuf codec. gRPC's own encodes every
// message of 1 KiB or more into a buffer from a process-wide pool of
// size-classed sync.Pools: after 1000 proxies received their first ~1 MB of
// clusters and endpoints at once, about 1 MB per proxy sat in that pool
// until two garbage collections later, which an idle control plane does
// not run for minutes (issue 5: the trellisd heap profile with 1000 synced
// proxies showed 760 MB of the 800 MB in use there; ≤ 0.5 MB per proxy is
// the target).
//
// Responses of the server's own stream loops (sidecars and gateways) are
// not encoded here at all: they are written from the resources' shared
// encodings (wire.go). What remains, proxyless clients' responses, is handled as
// follows. Large messages are encoded into buffers of their own, freed when
// the transport has written them, and their total is bounded by inflight:
// encoding waits while more than its limit is queued for slow readers, so
// 1000 simultaneous initial syncs (or a route table sent to every proxy)
// never hold more than about the limit. Waiting is bounded (maxWait): a
// client that stops reading cannot stall the others beyond that.
//
// Decoding and the codec's name ("proto") are protocodec's, which the
// proxy's ADS client uses for both directions.
type codec struct {
	protocodec.Plain
	inflight *inflight
}

var _ encoding.CodecV2 = codec{}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedResponse); ok {
		return e.buffers() // shared encodings (wire.go): nothing to bound
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("xdsserver: codec: marshal: %T is not a proto.Message", v)
	}
	opts := proto.MarshalOptions{UseCachedSize: true} // Size is computed just below
	size := opts.Size(m)
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("xdsserver: codec: marshal: %w", err)
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	c.inflight.acquire(size)
	b := make([]byte, 0, size)
	counted := cap(b)
	c.inflight.add(counted - size) // the allocator may round up
	b, err := opts.MarshalAppend(b, m)
	if err != nil {
		c.inflight.release(counted)
		return nil, fmt.Errorf("xdsserver: codec: marshal: %w", err)
	}
	return mem.BufferSlice{mem.NewBuffer(&b, c.inflight)}, nil
}

// inflight bounds the bytes of large encoded messages not yet written out.
// It is the mem.BufferPool of those buffers: the transport's Put, once a
// buffer is written, releases it (the buffer itself is left to the garbage
// collector). Safe for concurrent use.
//
// Waiters are admitted in arrival order as releases make room. One gives
// up waiting, and with it every waiter, only when nothing was released for
// maxWait: readers are stuck then, not slow. (Giving up maxWait after each
// waiter's arrival let 1000 initial syncs all pass the limit after a
// second: 530 MB of encoded clusters queued in the transport for a fleet
// reading slower than trellisd encodes; issue 5.)
type inflight struct {
	limit   int
	maxWait time.Duration

	mu       sync.Mutex
	bytes    int
	releases uint64   // count of releases: progress
	waiters  []waiter // FIFO
}

type waiter struct {
	n     int
	admit chan struct{} // closed once n is counted
}

var _ mem.BufferPool = (*inflight)(nil)

func newInflight(limit int, maxWait time.Duration) *inflight {
	return &inflight{limit: limit, maxWait: maxWait}
}

// acquire counts n more bytes once less than the limit is in flight and
// every earlier waiter is admitted, or once nothing was released for
// maxWait.
func (f *inflight) acquire(n int) {
	f.mu.Lock()
	if len(f.waiters) == 0 && f.bytes < f.limit {
		f.bytes += n
		f.mu.Unlock()
		return
	}
	w := waiter{n: n, admit: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	seen := f.releases
	f.mu.Unlock()
	t := time.NewTimer(f.maxWait)
	defer t.Stop()
	for {
		select {
		case <-w.admit:
			return
		case <-t.C:
		}
		f.mu.Lock()
		if f.releases == seen {
			// Stuck readers: let everyone through rather than stall
			// behind them.
			f.admit(true)
		}
		seen = f.releases
		f.mu.Unlock()
		t.Reset(f.maxWait)
	}
}

// admit counts and wakes waiters in order while there is room, or all of
// them when force is set. f.mu is held.
func (f *inflight) admit(force bool) {
	i := 0
	for ; i < len(f.waiters) && (force || f.bytes < f.limit); i++ {
		f.bytes += f.waiters[i].n
		close(f.waiters[i].admit)
	}
	f.waiters = slices.Delete(f.waiters, 0, i)
}

// add counts n more bytes without waiting.
func (f *inflight) add(n int) {
	f.mu.Lock()
	f.bytes += n
	f.mu.Unlock()
}

// release stops counting n bytes and admits the waiters it makes room for.
func (f *inflight) release(n int) {
	f.mu.Lock()
	f.bytes -= n
	f.releases++
	f.admit(false)
	f.mu.Unlock()
}

// inFlight reports the bytes counted (tests).
func (f *inflight) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes
}

// Get is not used: buffers are allocated by Marshal.
func (f *inflight) Get(length int) *[]byte {
	b := make([]byte, length)
	f.add(cap(b))
	return &b
}

// Put is called by the transport once a buffer has been written.
func (f *inflight) Put(b *[]byte) { f.release(cap(*b)) }
