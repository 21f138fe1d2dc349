package xdsserver

import (
	"strconv"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adsServer is go-control-plane's ADS server with delta streams of
// sidecars and gateways served by deltaStream instead. Proxyless gRPC
// clients (which speak state of the world; a delta one is rare) stay on
// go-control-plane's delta server and its proxyless cache. A stream is
// classified by its first request's node (gRPC, Envoy and trellis-proxy
// name it there); one whose first request names none is a sidecar's.
type adsServer struct {
	discoverygrpc.AggregatedDiscoveryServiceServer
	s *Server
}

var _ discoverygrpc.AggregatedDiscoveryServiceServer = adsServer{}

// DeltaAggregatedResources reads the first request to tell a proxyless
// client (node metadata GENERATOR: grpc) from a sidecar or gateway.
func (a adsServer) DeltaAggregatedResources(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	first, err := str.Recv()
	if err != nil {
		return nil // closed before asking anything, as go-control-plane ends it
	}
	if cacheKey(first.GetNode()) == keyProxyless {
		return a.AggregatedDiscoveryServiceServer.DeltaAggregatedResources(&replayStream{str, first})
	}
	return a.s.serveDelta(str, first)
}

// replayStream hands its first request out again before reading on.
// go-control-plane reads a stream from one goroutine only.
type replayStream struct {
	discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	first *discoveryv3.DeltaDiscoveryRequest
}

func (r *replayStream) Recv() (*discoveryv3.DeltaDiscoveryRequest, error) {
	if f := r.first; f != nil {
		r.first = nil
		return f, nil
	}
	return r.AggregatedDiscoveryService_DeltaAggregatedResourcesServer.Recv()
}

// deltaStream is one sidecar's or gateway's delta ADS stream. Its goroutine
// (the gRPC handler's) owns all of its state: it applies requests and,
// after each request and each wake-up by the cache (the node's snapshot
// changed), sends each type whose shared set differs from what the client
// holds, in servedTypes order (ADS: CDS before EDS, LDS before RDS). A
// second goroutine only reads requests. Responses are computed from the
// node's latest snapshot when the stream gets to them: a slow stream skips
// intermediate snapshots rather than queueing them.
type deltaStream struct {
	s     *Server
	key   streamKey
	grpc  discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	cn    *cacheNode    // the node's cache entry, once a request names the node
	wake  chan struct{} // capacity 1: the node's snapshot changed
	subs  [len(servedTypes)]deltaSub
	nonce int64
}

type received struct {
	req *discoveryv3.DeltaDiscoveryRequest
	err error
}

// serveDelta runs a delta stream whose first request was first until the
// client ends it, sending fails, or the server closes.
func (s *Server) serveDelta(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, first *discoveryv3.DeltaDiscoveryRequest) error {
	st := &deltaStream{s: s, key: streamKey{delta: true, own: true, id: s.deltaIDs.Add(1)}, grpc: str,
		wake: make(chan struct{}, 1)}
	s.open(st.key)
	defer s.detach(st.key)
	defer st.unwatch()

	// The reader ends once this handler has returned: gRPC then cancels
	// the stream's context and Recv fails.
	reqs := make(chan received)
	go func() {
		for {
			req, err := str.Recv()
			select {
			case reqs <- received{req, err}:
			case <-str.Context().Done():
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
			if err := st.request(next); err != nil {
				return err
			}
			next = nil
		}
		if err := st.flush(); err != nil {
			return err
		}
		select {
		case <-s.ctx.Done():
			return nil
		case <-str.Context().Done():
			return nil // the client went away
		case <-st.wake:
		case r := <-reqs:
			if r.err != nil {
				// The client ended the stream (io.EOF) or it broke: as
				// go-control-plane, end it without an error of our own.
				return nil
			}
			next = r.req
		}
	}
}

// request records a request: the node on the first, ACK or NACK, and the
// subscription changes of its type.
func (st *deltaStream) request(req *discoveryv3.DeltaDiscoveryRequest) error {
	s := st.s
	if st.cn == nil && req.GetNode() != nil { // the first request naming the node
		s.first(st.key, req.GetNode())
		st.cn = s.sidecars.watchDelta(req.GetNode().GetId(), st.wake)
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
	}
	s.intern(st.key, typeURL, req.ResourceNamesSubscribe)
	// Delta requests carry no version: the nonce says what is answered. A
	// NACK is recorded and nothing is re-sent: the stream counts what it
	// sent as held, so the client keeps its last good config until the
	// next change, as Istio does.
	s.answer(st.key, typeURL, req.GetResponseNonce(), "", req.GetErrorDetail())
	typ := typeIndex(typeURL)
	if typ < 0 {
		return nil // a type Trellis does not serve is never answered
	}
	d := &st.subs[typ]
	d.request(&s.names, !d.opened, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe(),
		req.GetInitialResourceVersions(), req.GetResponseNonce())
	return nil
}

func (st *deltaStream) unwatch() {
	if st.cn != nil {
		st.cn.unwatchDelta(st.wake)
	}
}

// flush sends every type whose set differs from what the client holds.
func (st *deltaStream) flush() error {
	if st.cn == nil {
		return nil
	}
	snap := st.cn.snapshot()
	if snap == nil {
		return nil // the node's first snapshot wakes the stream
	}
	for typ := range servedTypes {
		d := &st.subs[typ]
		rs := snap.sets[typ]
		if !d.opened || d.unanswered || rs == nil || d.current(rs) {
			continue
		}
		out, removed := d.diff(rs)
		if len(out) == 0 && len(removed) == 0 && !d.answer {
			d.commit(rs, false) // the client holds rs's resources already
			continue
		}
		st.nonce++
		head := &discoveryv3.DeltaDiscoveryResponse{
			SystemVersionInfo: rs.version, RemovedResources: removed,
			TypeUrl: servedTypes[typ].url, Nonce: strconv.FormatInt(st.nonce, 10),
		}
		st.s.sent(st.key, head.TypeUrl, head.Nonce, head.SystemVersionInfo)
		// The generated Send takes the message type only; SendMsg hands
		// the codec the pre-encoded response (wire.go).
		if err := st.grpc.SendMsg(&encodedResponse{head: head, delta: true, out: out}); err != nil {
			return err
		}
		d.commit(rs, true)
		d.unanswered = true
	}
	return nil
}
