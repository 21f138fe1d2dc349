package xdsserver

import (
	"context"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
)

// dispatch reads an ADS stream's first request to tell a proxyless gRPC
// client (node metadata GENERATOR: grpc), whose stream gcp serves
// (go-control-plane's server and proxyless cache, reading the first
// request again), from a sidecar or gateway, whose stream own serves. A
// stream is classified by its first request's node (gRPC, Envoy and
// trellis-proxy name it there); one whose first request names none is a
// sidecar's.
func dispatch[Req, Resp any](str grpc.BidiStreamingServer[Req, Resp], gcp func(grpc.BidiStreamingServer[Req, Resp]) error,
	own func(grpc.BidiStreamingServer[Req, Resp], *Req) error) error {
	first, err := str.Recv()
	if err != nil {
		return nil // closed before asking anything, as go-control-plane ends it
	}
	if n, ok := any(first).(interface{ GetNode() *corev3.Node }); ok && cacheKey(n.GetNode()) == keyProxyless {
		return gcp(&replay[Req, Resp]{str, first})
	}
	return own(str, first)
}

// replay hands its first request out again before reading on.
// go-control-plane reads a stream from one goroutine only.
type replay[Req, Resp any] struct {
	grpc.BidiStreamingServer[Req, Resp]
	first *Req
}

func (r *replay[Req, Resp]) Recv() (*Req, error) {
	if f := r.first; f != nil {
		r.first = nil
		return f, nil
	}
	return r.BidiStreamingServer.Recv()
}

// runStream is the loop of the server's own ADS streams (delta.go,
// sotw.go), run on the gRPC handler's goroutine, which owns the stream's
// state: it handles first, then, after each request and each wake-up (the
// node's snapshot changed), flushes what the stream owes. A second
// goroutine only reads requests; it ends once the handler has returned
// (gRPC then cancels the stream's context and recv fails). It returns nil
// when the client ends the stream, the stream breaks or the server closes,
// as go-control-plane's server does, and handle's or flush's error.
func runStream[Req any](ctx, serverCtx context.Context, recv func() (*Req, error), wake <-chan struct{},
	first *Req, handle func(*Req) error, flush func() error) error {
	type received struct {
		req *Req
		err error
	}
	reqs := make(chan received)
	go func() {
		for {
			req, err := recv()
			select {
			case reqs <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	next := first
	for {
		if next != nil {
			if err := handle(next); err != nil {
				return err
			}
			next = nil
		}
		if err := flush(); err != nil {
			return err
		}
		select {
		case <-serverCtx.Done():
			return nil
		case <-ctx.Done():
			return nil // the client went away
		case <-wake:
		case r := <-reqs:
			if r.err != nil {
				return nil // io.EOF: the client ended the stream; else it broke
			}
			next = r.req
		}
	}
}

// ownStream is what the server's own streams (sotwStream, deltaStream)
// share: their key, their node's cache entry and wake-up, and their
// nonces. Owned by the stream's goroutine.
type ownStream struct {
	s     *Server
	key   streamKey
	cn    *cacheNode    // the node's cache entry, once a request names the node
	wake  chan struct{} // capacity 1: the node's snapshot changed
	nonce int64
}

// serve registers the stream, runs it and forgets it.
func serve[Req, Resp any](o *ownStream, str grpc.BidiStreamingServer[Req, Resp], first *Req,
	handle func(*Req) error, flush func() error) error {
	o.wake = make(chan struct{}, 1)
	o.s.open(o.key)
	defer o.s.detach(o.key)
	defer func() {
		if o.cn != nil {
			o.cn.unwatch(o.wake)
		}
	}()
	return runStream(str.Context(), o.s.ctx, str.Recv, o.wake, first, handle, flush)
}

// bind binds the stream to the node n names on the first request that
// names one: for a node never seen, its first snapshot is computed now so
// this very request can be answered.
func (o *ownStream) bind(n *corev3.Node) {
	if o.cn == nil && n != nil {
		o.s.first(o.key, n)
		o.cn = o.s.sidecars.watch(n.GetId(), o.wake)
	}
}

// snapshot is the node's current snapshot; nil before the stream is bound
// or the node's first snapshot (which wakes the stream).
func (o *ownStream) snapshot() *nodeSnapshot {
	if o.cn == nil {
		return nil
	}
	return o.cn.snapshot()
}

// sending numbers a response of typeURL at version and records it
// (pilot_xds_pushes, Status); it returns the response's nonce.
func (o *ownStream) sending(typeURL, version string) string {
	o.nonce++
	nonce := strconv.FormatInt(o.nonce, 10)
	o.s.sent(o.key, typeURL, nonce, version)
	return nonce
}
