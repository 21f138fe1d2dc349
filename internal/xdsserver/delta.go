package xdsserver

import (
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adsServer is go-control-plane's ADS server with the streams of sidecars
// and gateways served by the server's own loops (sotwStream, deltaStream)
// instead. Proxyless gRPC clients stay on go-control-plane's server and
// its proxyless cache (dispatch).
type adsServer struct {
	discoverygrpc.AggregatedDiscoveryServiceServer
	s *Server
}

var _ discoverygrpc.AggregatedDiscoveryServiceServer = adsServer{}

func (a adsServer) DeltaAggregatedResources(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return dispatch(str, a.AggregatedDiscoveryServiceServer.DeltaAggregatedResources, a.s.serveDelta)
}

func (a adsServer) StreamAggregatedResources(str discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return dispatch(str, a.AggregatedDiscoveryServiceServer.StreamAggregatedResources, a.s.serveSotw)
}

// deltaStream is one sidecar's or gateway's delta ADS stream, run by
// runStream: it applies requests and, after each request and each wake-up
// by the cache (the node's snapshot changed), sends each type whose shared
// set differs from what the client holds, in servedTypes order (ADS: CDS
// before EDS, LDS before RDS). Responses are computed from the node's
// latest snapshot when the stream gets to them: a slow stream skips
// intermediate snapshots rather than queueing them.
type deltaStream struct {
	ownStream
	grpc discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	subs [len(servedTypes)]deltaSub
}

// serveDelta runs a delta stream whose first request was first until the
// client ends it, sending fails, or the server closes.
func (s *Server) serveDelta(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, first *discoveryv3.DeltaDiscoveryRequest) error {
	st := &deltaStream{ownStream: ownStream{s: s, key: streamKey{delta: true, own: true, id: s.deltaIDs.Add(1)}}, grpc: str}
	return serve(&st.ownStream, str, first, st.request, st.flush)
}

// request records a request: the node on the first, ACK or NACK, and the
// subscription changes of its type.
func (st *deltaStream) request(req *discoveryv3.DeltaDiscoveryRequest) error {
	s := st.s
	st.bind(req.GetNode())
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

// flush sends every type whose set differs from what the client holds.
func (st *deltaStream) flush() error {
	snap := st.snapshot()
	if snap == nil {
		return nil
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
		url := servedTypes[typ].url
		head := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: rs.version, RemovedResources: removed,
			TypeUrl: url, Nonce: st.sending(url, rs.version)}
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
