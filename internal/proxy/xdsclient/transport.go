package xdsclient

import (
	"maps"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// errorDetail is a NACK's error_detail.
func errorDetail(err error) *statuspb.Status {
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

// sotwTransport is StreamAggregatedResources. LDS and CDS are wildcard
// (empty resource_names) and every response is the complete set; RDS and
// EDS name their resources and a response carries only named ones.
type sotwTransport struct {
	stream   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool
	nonce    map[string]string // last response nonce per type on this stream
	opened   map[string]bool   // types requested on this stream
}

var _ transport = (*sotwTransport)(nil)

func newSotWTransport(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node) *sotwTransport {
	return &sotwTransport{stream: s, node: node, nonce: map[string]string{}, opened: map[string]bool{}}
}

func (t *sotwTransport) send(st *state, typeURL string, detail error) error {
	req := &discoveryv3.DiscoveryRequest{
		VersionInfo:   st.accepted[typeURL], // on a NACK: the previous good version
		TypeUrl:       typeURL,
		ResponseNonce: t.nonce[typeURL],
	}
	if !wildcard(typeURL) {
		req.ResourceNames = st.subscribed(typeURL)
	}
	if detail != nil {
		req.ErrorDetail = errorDetail(detail)
	}
	if !t.sentNode { // the node goes on the first request only, as Envoy
		req.Node, t.sentNode = t.node, true
	}
	t.opened[typeURL] = true
	return t.stream.Send(req)
}

func (t *sotwTransport) start(st *state) error {
	for _, typeURL := range typeOrder {
		// An RDS/EDS request with no names would be a legacy wildcard.
		if wildcard(typeURL) || len(st.subs[typeURL]) > 0 {
			if err := t.send(st, typeURL, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *sotwTransport) recv() (*response, error) {
	m, err := t.stream.Recv()
	if err != nil {
		return nil, err
	}
	r := &response{
		typeURL: m.GetTypeUrl(),
		version: m.GetVersionInfo(),
		nonce:   m.GetNonce(),
		full:    wildcard(m.GetTypeUrl()),
	}
	for _, a := range m.GetResources() {
		r.items = append(r.items, item{any: a})
	}
	return r, nil
}

func (t *sotwTransport) ack(st *state, r *response) error {
	t.nonce[r.typeURL] = r.nonce
	st.accepted[r.typeURL] = r.version
	return t.send(st, r.typeURL, nil)
}

func (t *sotwTransport) nack(st *state, r *response, err error) error {
	t.nonce[r.typeURL] = r.nonce
	return t.send(st, r.typeURL, err)
}

func (t *sotwTransport) subscribe(st *state, c subChange) error {
	if !t.opened[c.typeURL] && len(st.subs[c.typeURL]) == 0 {
		return nil
	}
	return t.send(st, c.typeURL, nil)
}

// deltaTransport is DeltaAggregatedResources: LDS and CDS subscribe to "*",
// RDS and EDS by name; responses carry changes and removals.
type deltaTransport struct {
	stream   discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool
	opened   map[string]bool
}

var _ transport = (*deltaTransport)(nil)

func newDeltaTransport(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, node *corev3.Node) *deltaTransport {
	return &deltaTransport{stream: s, node: node, opened: map[string]bool{}}
}

func (t *deltaTransport) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !t.sentNode {
		req.Node, t.sentNode = t.node, true
	}
	return t.stream.Send(req)
}

// open sends a type's first request on this stream, with the versions
// already held so that the server sends only what changed.
func (t *deltaTransport) open(st *state, typeURL string) error {
	req := &discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                 typeURL,
		InitialResourceVersions: maps.Clone(st.versions[typeURL]),
	}
	if wildcard(typeURL) {
		req.ResourceNamesSubscribe = []string{"*"}
	} else {
		req.ResourceNamesSubscribe = st.subscribed(typeURL)
	}
	t.opened[typeURL] = true
	return t.send(req)
}

func (t *deltaTransport) start(st *state) error {
	for _, typeURL := range typeOrder {
		if wildcard(typeURL) || len(st.subs[typeURL]) > 0 {
			if err := t.open(st, typeURL); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *deltaTransport) recv() (*response, error) {
	m, err := t.stream.Recv()
	if err != nil {
		return nil, err
	}
	r := &response{
		typeURL: m.GetTypeUrl(),
		version: m.GetSystemVersionInfo(),
		nonce:   m.GetNonce(),
		removed: m.GetRemovedResources(),
	}
	if r.version == "" {
		r.version = r.nonce
	}
	for _, res := range m.GetResources() {
		r.items = append(r.items, item{name: res.GetName(), version: res.GetVersion(), any: res.GetResource()})
	}
	return r, nil
}

func (t *deltaTransport) ack(_ *state, r *response) error {
	return t.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce})
}

func (t *deltaTransport) nack(_ *state, r *response, err error) error {
	return t.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce, ErrorDetail: errorDetail(err)})
}

func (t *deltaTransport) subscribe(st *state, c subChange) error {
	if !t.opened[c.typeURL] {
		if len(c.added) == 0 {
			return nil
		}
		return t.open(st, c.typeURL)
	}
	return t.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                  c.typeURL,
		ResourceNamesSubscribe:   c.added,
		ResourceNamesUnsubscribe: c.removed,
	})
}
