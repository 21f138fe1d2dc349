package xdsserver

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sotwStream is one sidecar's or gateway's state-of-the-world ADS stream,
// run by runStream. It follows go-control-plane's ADS server (v0.14.0,
// pkg/server/sotw/v3) and the responses the sidecar cache gave it:
//
//   - a request of a type opens its watch, which one response answers;
//     a request whose response_nonce is not the type's last one is stale
//     and ignored (after the ACK/NACK bookkeeping);
//   - LDS and CDS are full state: every subscribed resource, when the
//     request's version differs from the set's (a wildcard stream is sent
//     the whole set, tracking nothing else);
//   - EDS and RDS send only the subscribed resources the stream does not
//     hold at their current version, under the set's version (the protocol
//     lets a client keep what a response omits, as Envoy and gRPC do);
//   - a NACK's version is the one rejected (callbacks.go), so nothing is
//     re-sent until the next change.
//
// What the stream holds is a deltaSub's compact holdings (the shared set
// last sent plus rare exceptions) and its subscribed names an interned
// shared list, where go-control-plane kept a name set and a name→version
// map per stream and type, and a new map for every response (issue 5).
type sotwStream struct {
	ownStream
	grpc discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	node *corev3.Node // the last request's that named one
	subs [len(servedTypes)]sotwSub
}

// sotwSub is one type of a state-of-the-world stream.
type sotwSub struct {
	deltaSub // opened, wildcard, legacy, names and holdings
	open     bool
	version  string       // the open request's version_info
	nonce    string       // the last response's
	skip     *resourceSet // the open watch found nothing to send in it
}

// serveSotw runs a state-of-the-world stream whose first request was first.
func (s *Server) serveSotw(str discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer, first *discoveryv3.DiscoveryRequest) error {
	st := &sotwStream{ownStream: ownStream{s: s, key: streamKey{own: true, id: s.sotwIDs.Add(1)}}, grpc: str}
	return serve(&st.ownStream, str, first, st.request, st.flush)
}

// request records a request and, unless it is stale, applies it to its
// type's subscription and opens the type's watch.
func (st *sotwStream) request(req *discoveryv3.DiscoveryRequest) error {
	s := st.s
	// The node is sent once; later requests are given it back, as
	// go-control-plane does before its callbacks run.
	if req.GetNode() != nil {
		st.node = req.GetNode()
	} else {
		req.Node = st.node
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
	}
	st.bind(req.GetNode())
	s.intern(st.key, typeURL, req.ResourceNames)
	ver, nacked := s.answer(st.key, typeURL, req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail())
	version := req.GetVersionInfo()
	if nacked && ver != "" {
		// A NACK carries the last version the proxy accepted; answering
		// the rejected version instead waits for the next change rather
		// than re-sending what was rejected (Istio likewise does not push
		// on a NACK).
		version = ver
	}
	typ := typeIndex(typeURL)
	if typ < 0 {
		return nil // a type Trellis does not serve is never answered
	}
	st.subs[typ].accept(&s.names, req.GetResourceNames(), version, req.GetResponseNonce())
	return nil
}

// accept applies a request of the type and opens its watch, unless it is
// stale: it answers an older response than the type's last.
func (t *sotwSub) accept(ls *nameLists, names []string, version, nonce string) {
	if t.opened && t.nonce != "" && nonce != t.nonce {
		return
	}
	t.subscribe(ls, names)
	t.open, t.version, t.skip = true, version, nil
}

// subscribe applies a request's resource names (the whole subscription,
// in the state of the world): go-control-plane's SetResourceSubscription.
func (t *sotwSub) subscribe(ls *nameLists, names []string) {
	if !t.opened {
		t.opened, t.legacy, t.wildcard = true, true, len(names) == 0
	}
	if t.legacy {
		if len(names) == 0 {
			return // still wildcard by the legacy rule
		}
		t.legacy = false
	}
	explicit := slices.Contains(names, wildcardName)
	prev, wasWildcard := t.names, t.wildcard
	t.names, t.wildcard = ls.same(t.names, names), explicit
	if !explicit && (t.names != prev || wasWildcard) {
		// Unsubscribed names are no longer held, so that subscribing
		// to one again sends it even if unchanged.
		for name := range t.outside() {
			t.drop(name)
		}
	}
}

// flush answers each open watch that has something to send, in
// servedTypes order.
func (st *sotwStream) flush() error {
	snap := st.snapshot()
	if snap == nil {
		return nil
	}
	for typ := range servedTypes {
		t := &st.subs[typ]
		url := servedTypes[typ].url
		out, ok := t.next(url, snap.sets[typ])
		if !ok {
			continue
		}
		rs := snap.sets[typ]
		head := &discoveryv3.DiscoveryResponse{VersionInfo: rs.version, TypeUrl: url, Nonce: st.sending(url, rs.version)}
		if err := st.grpc.SendMsg(&encodedResponse{head: head, out: out}); err != nil {
			return err
		}
		t.sent(url, rs, head.Nonce)
	}
	return nil
}

// next is what the open watch sends from rs (nil: the type is not served
// yet); false when it sends nothing yet, which is remembered until the set
// or the request changes.
func (t *sotwSub) next(url string, rs *resourceSet) ([]*resource, bool) {
	if !t.open || rs == nil || rs == t.skip {
		return nil, false
	}
	out, ok := t.response(url, rs)
	if !ok {
		t.skip = rs
	}
	return out, ok
}

// sent records the response next returned as sent with nonce: the watch is
// answered and the client holds what it carried.
func (t *sotwSub) sent(url string, rs *resourceSet, nonce string) {
	t.open, t.nonce, t.skip = false, nonce, nil
	if cachev3.ResourceRequiresFullStateInSotw(url) && t.wildcard {
		t.base, t.absent, t.extra = nil, nil, nil // go-control-plane tracks nothing
		return
	}
	t.commit(rs, true)
}

// response is what the open watch sends from rs, sorted by name; false when
// it sends nothing yet.
func (t *sotwSub) response(url string, rs *resourceSet) ([]*resource, bool) {
	full := cachev3.ResourceRequiresFullStateInSotw(url)
	changed := t.version != rs.version
	if full && t.wildcard {
		// The version covers every name and encoding: equal means the
		// client has it all.
		return rs.sorted, changed
	}
	out, _ := t.diff(rs)
	if !changed && len(out) == 0 {
		return nil, false
	}
	if !full {
		return out, true
	}
	if t.wildcard {
		return rs.sorted, true // the client drops what a full-state response omits
	}
	all := make([]*resource, 0, t.names.len())
	for _, name := range t.names.all() {
		if r := rs.byName[name]; r != nil {
			all = append(all, r)
		}
	}
	return all, true
}
