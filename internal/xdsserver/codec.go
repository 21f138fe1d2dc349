package xdsserver

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
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
// Large messages are instead encoded into buffers of their own, freed when
// the transport has written them, and their total is bounded by inflight:
// encoding waits while more than its limit is queued for slow readers, so
// 1000 simultaneous initial syncs (or a route table sent to every proxy)
// never hold more than about the limit. Waiting is bounded (maxWait): a
// client that stops reading cannot stall the others beyond that.
type codec struct{ inflight *inflight }

var _ encoding.CodecV2 = codec{}

// Name is "proto": it replaces the default codec for the server.
func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
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

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("xdsserver: codec: unmarshal: %T is not a proto.Message", v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData() // proto.Unmarshal copies what it keeps
	} else {
		b = data.Materialize()
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("xdsserver: codec: unmarshal: %w", err)
	}
	return nil
}

// inflight bounds the bytes of large encoded messages not yet written out.
// It is the mem.BufferPool of those buffers: the transport's Put, once a
// buffer is written, releases it (the buffer itself is left to the garbage
// collector). Safe for concurrent use.
type inflight struct {
	limit   int
	maxWait time.Duration

	mu      sync.Mutex
	bytes   int
	changed chan struct{} // closed and replaced on every release
}

var _ mem.BufferPool = (*inflight)(nil)

func newInflight(limit int, maxWait time.Duration) *inflight {
	return &inflight{limit: limit, maxWait: maxWait, changed: make(chan struct{})}
}

// acquire waits until less than the limit is in flight, or maxWait passed,
// then counts n more bytes.
func (f *inflight) acquire(n int) {
	var deadline <-chan time.Time
	for {
		f.mu.Lock()
		if f.bytes < f.limit {
			f.bytes += n
			f.mu.Unlock()
			return
		}
		ch := f.changed
		f.mu.Unlock()
		if deadline == nil {
			t := time.NewTimer(f.maxWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ch:
		case <-deadline:
			f.add(n) // over the limit rather than stalled behind a slow reader
			return
		}
	}
}

// add counts n more bytes without waiting.
func (f *inflight) add(n int) {
	f.mu.Lock()
	f.bytes += n
	f.mu.Unlock()
}

// release stops counting n bytes and wakes the waiters.
func (f *inflight) release(n int) {
	f.mu.Lock()
	f.bytes -= n
	close(f.changed)
	f.changed = make(chan struct{})
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
