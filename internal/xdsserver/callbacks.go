package xdsserver

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// callbacks feed stream events of go-control-plane's server (proxyless
// clients' streams) into the server; the server's own streams (sotw.go,
// delta.go) call the same methods (first, intern, answer, sent) directly.
// They run synchronously on the stream's goroutine, before the cache sees
// the request, and never block on anything but short critical sections
// (and, on a node's first request, its first translation).
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(_ context.Context, id int64, _ string) error {
	c.s.open(streamKey{id: id})
	return nil
}

func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) { c.s.detach(streamKey{id: id}) }

func (c callbacks) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	c.s.open(streamKey{delta: true, id: id})
	return nil
}

func (c callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.s.detach(streamKey{delta: true, id: id})
}

func (c callbacks) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	k := streamKey{id: id}
	c.s.first(k, req.GetNode())
	c.s.intern(k, req.GetTypeUrl(), req.ResourceNames)
	ver, nacked := c.s.answer(k, req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail())
	if nacked && ver != "" {
		// A NACK carries the last version the proxy accepted, and the cache
		// answers any request whose version differs from its own by
		// re-sending: the proxy would be fed the config it just rejected,
		// in a loop. Mark the request as answering the rejected version
		// instead, so the cache waits for the next change (Istio likewise
		// does not push on a NACK).
		req.VersionInfo = ver
	}
	return nil
}

func (c callbacks) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	k := streamKey{delta: true, id: id}
	c.s.first(k, req.GetNode())
	c.s.intern(k, req.GetTypeUrl(), req.ResourceNamesSubscribe)
	// Delta requests carry no version: the nonce says what is answered. The
	// delta server already tracks what it sent, so a NACK causes no resend.
	c.s.answer(k, req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail())
	return nil
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.s.sent(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

func (c callbacks) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	c.s.sent(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

func (callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

func (callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

func (s *Server) open(k streamKey) {
	s.mu.Lock()
	s.streams[k] = &stream{}
	s.mu.Unlock()
}

// first binds the stream to its node on its first request and, for a node
// never seen before, computes its snapshot now so the cache can answer this
// very request.
func (s *Server) first(k streamKey, n *corev3.Node) {
	s.mu.Lock()
	st := s.streams[k]
	bound := st != nil && st.node != nil
	s.mu.Unlock()
	if bound || n == nil {
		return
	}
	if nd, fresh := s.attach(k, n); fresh {
		s.firstSlots <- struct{}{}
		s.compute(nd)
		<-s.firstSlots
	}
}

// intern replaces each name in names (a request's resource names, freshly
// decoded) that the stream's node has a resource of by the resource's own
// copy of the name. go-control-plane keeps the request's names in the
// stream's subscription until the next request: 1000 sidecars subscribing
// to 1000 ClusterLoadAssignments each kept a million strings of their own
// (issue 5: ~50 MB of trellisd's heap), now they share the set's.
func (s *Server) intern(k streamKey, typeURL string, names []string) {
	if len(names) == 0 {
		return
	}
	s.mu.Lock()
	var id string
	if st := s.streams[k]; st != nil && st.node != nil {
		id = st.node.id
	}
	s.mu.Unlock()
	if id != "" {
		s.sidecars.intern(id, typeURL, names)
	}
}

// answer records an ACK or NACK. version is the request's version_info
// (state-of-the-world) or empty (delta). It returns the version of the
// response being answered, when known, and whether it was rejected.
func (s *Server) answer(k streamKey, typeURL, nonce, version string, nack *status.Status) (string, bool) {
	if nonce == "" {
		return "", false // a first request or a new subscription, not an answer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil || st.node == nil {
		return "", false
	}
	answered, known := st.versionOf(typeURL, nonce)
	ts := st.node.typeState(typeURL)
	if nack != nil {
		ts.nack, ts.nackTime = nack.GetMessage(), time.Now()
		s.metrics.rejects.WithLabelValues(typeLabel(typeURL)).Inc()
		s.log.Warn("proxy rejected config (NACK)", "node", st.node.id, "type", typeLabel(typeURL),
			"version", answered, "nonce", nonce, "reason", nack.GetMessage())
		return answered, true
	}
	if version == "" {
		version = answered
	}
	if !known && version == "" {
		return "", false
	}
	ts.acked = version
	return answered, false
}

// sent records a response about to go out.
func (s *Server) sent(k streamKey, typeURL, nonce, version string) {
	s.metrics.pushes.WithLabelValues(typeLabel(typeURL)).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil || st.node == nil {
		return
	}
	st.recordNonce(typeURL, nonce, version)
	ts := st.node.typeState(typeURL)
	ts.sent = version
	ts.pushes++
}

// typeState returns the state for typeURL, creating it. Server.mu must be held.
func (n *node) typeState(typeURL string) *typeState {
	ts := n.types[typeURL]
	if ts == nil {
		ts = &typeState{}
		n.types[typeURL] = ts
	}
	return ts
}
