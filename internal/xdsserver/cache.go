package xdsserver

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// sidecarCache holds each sidecar's and gateway's nodeSnapshot, answers
// the watches of their state-of-the-world ADS streams and wakes their delta
// streams (delta.go). go-control-plane's server still runs the
// state-of-the-world streams, nonces and subscriptions; this replaces its
// SnapshotCache, which for every node keeps its own resource maps, marshals
// every resource again for every response and, for delta, hashes every
// resource of every node (issue 5: 17 CPU-s per push and 2.2 MB per proxy
// with 1000 proxies × 1000 services).
//
// Per node it keeps a pointer to the node's snapshot, whose sets and
// resources are shared between nodes and encoded once (set.go), the node's
// open state-of-the-world watches and its delta streams' wake-up channels.
// State-of-the-world responses:
//
//   - LDS and CDS (full state in the protocol): every resource, when the
//     version the request carries differs;
//   - EDS and RDS: only the subscribed resources the stream has not been
//     sent at their current version (the subscription's returned
//     resources), under the new version. The xDS protocol lets a client
//     keep what such a response omits, as Envoy and gRPC do, and Istio's
//     incremental EDS sends the same; an endpoint change thus sends one
//     ClusterLoadAssignment, not all of them.
//
// Delta streams compute their own responses (deltaSub): the cache only
// tells them that the node's snapshot changed.
//
// Watches of one node are answered in servedTypes order (CDS, EDS, LDS,
// RDS), as ADS requires. A response is handed over without blocking: the
// server gives each stream a channel with room for one response per type.
// Safe for concurrent use.
type sidecarCache struct {
	log   *slog.Logger
	wires *sotwWires // state-of-the-world responses' resources, for the codec (wire.go)

	mu     sync.Mutex
	nodes  map[string]*cacheNode
	nextID int64
}

var _ cachev3.Cache = (*sidecarCache)(nil)

type cacheNode struct {
	mu    sync.Mutex
	snap  *nodeSnapshot // nil until set
	sotw  map[int64]*sotwWatch
	delta []chan<- struct{} // delta streams' wake-ups, capacity 1 each
}

type sotwWatch struct {
	typ int // index into servedTypes
	req *cachev3.Request
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

func newSidecarCache(log *slog.Logger, wires *sotwWires) *sidecarCache {
	return &sidecarCache{log: log, wires: wires, nodes: make(map[string]*cacheNode)}
}

// node returns the entry of id, creating it.
func (c *sidecarCache) node(id string) (*cacheNode, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	if n == nil {
		n = &cacheNode{sotw: make(map[int64]*sotwWatch)}
		c.nodes[id] = n
	}
	c.nextID++
	return n, c.nextID
}

// SetSnapshot makes snap node id's current snapshot and answers the node's
// open watches it changes, in servedTypes order.
func (c *sidecarCache) SetSnapshot(_ context.Context, id string, snap *nodeSnapshot) error {
	n, _ := c.node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	prev := n.snap
	n.snap = snap
	for _, wake := range n.delta {
		select {
		case wake <- struct{}{}:
		default: // already woken; the stream reads the latest snapshot
		}
	}
	for typ := range servedTypes {
		// Every open watch was last evaluated against the node's current
		// set of its type (in CreateWatch or in an earlier SetSnapshot),
		// and a response is a function of the request, the subscription
		// and the set only: a type whose set is the same shared set again
		// has nothing to answer. An endpoint change thus walks only the
		// EDS watches, not every cluster and listener name of every
		// stream (issue 5: 60% of trellisd's CPU per push with 1000 delta
		// streams).
		if prev != nil && prev.sets[typ] == snap.sets[typ] {
			continue
		}
		for wid, w := range n.sotw {
			if w.typ != typ {
				continue
			}
			if resp := sotwResponse(w.req, w.sub, snap.sets[typ]); resp != nil {
				c.sendSotw(w.ch, resp)
				delete(n.sotw, wid)
			}
		}
	}
	return nil
}

// intern replaces each of names that node id's current set of typeURL
// holds by the set's copy of the name (Server.intern). Nodes the cache does
// not hold (proxyless clients) and unknown names are left alone.
func (c *sidecarCache) intern(id, typeURL string, names []string) {
	typ := typeIndex(typeURL)
	if typ < 0 {
		return
	}
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.mu.Lock()
	snap := n.snap // immutable
	n.mu.Unlock()
	if snap == nil || snap.sets[typ] == nil {
		return
	}
	byName := snap.sets[typ].byName
	for i, name := range names {
		if r := byName[name]; r != nil {
			names[i] = r.name
		}
	}
}

// GetSnapshot returns node id's snapshot (tests and debugging).
func (c *sidecarCache) GetSnapshot(id string) (*nodeSnapshot, error) {
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	if n == nil {
		return nil, errors.New("xdsserver: cache: no snapshot for node " + id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.snap == nil {
		return nil, errors.New("xdsserver: cache: no snapshot for node " + id)
	}
	return n.snap, nil
}

// ClearSnapshot forgets node id. Its streams have closed, and with them
// their watches.
func (c *sidecarCache) ClearSnapshot(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, id)
}

// CreateWatch answers a state-of-the-world request now when the node's
// snapshot has something for it, else holds it until SetSnapshot does.
func (c *sidecarCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	typ := typeIndex(req.GetTypeUrl())
	n, wid := c.node(req.GetNode().GetId())
	n.mu.Lock()
	defer n.mu.Unlock()
	if typ >= 0 && n.snap != nil {
		if resp := sotwResponse(req, sub, n.snap.sets[typ]); resp != nil {
			c.sendSotw(ch, resp)
			return func() {}, nil
		}
	}
	// A type Trellis does not serve is held forever, as go-control-plane's
	// cache holds a type its snapshots lack.
	n.sotw[wid] = &sotwWatch{typ: typ, req: req, sub: sub, ch: ch}
	return func() {
		n.mu.Lock()
		delete(n.sotw, wid)
		n.mu.Unlock()
	}, nil
}

// watchDelta registers a delta stream of node id: wake gets a token
// whenever the node's snapshot changes. It returns the node's entry.
func (c *sidecarCache) watchDelta(id string, wake chan<- struct{}) *cacheNode {
	n, _ := c.node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delta = append(n.delta, wake)
	return n
}

// unwatchDelta forgets a delta stream registered with watchDelta.
func (n *cacheNode) unwatchDelta(wake chan<- struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delta = slices.DeleteFunc(n.delta, func(w chan<- struct{}) bool { return w == wake })
}

// snapshot returns the node's current snapshot, nil before the first.
func (n *cacheNode) snapshot() *nodeSnapshot {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.snap
}

// CreateDeltaWatch is not used: the server runs sidecars' and gateways'
// delta streams itself (delta.go).
func (c *sidecarCache) CreateDeltaWatch(*cachev3.DeltaRequest, cachev3.Subscription, chan cachev3.DeltaResponse) (func(), error) {
	return nil, errors.New("xdsserver: cache: delta streams are served by the server's own loop")
}

// Fetch is REST xDS, which Trellis does not serve.
func (c *sidecarCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, errors.New("xdsserver: cache: fetch is not supported")
}

func (c *sidecarCache) sendSotw(ch chan cachev3.Response, resp cachev3.Response) {
	if r, ok := resp.(*sotwReply); ok && c.wires != nil {
		c.wires.put(r)
	}
	select {
	case ch <- resp:
	default:
		// Cannot happen: one watch per type and room for one response per
		// type. Dropping is what go-control-plane does for a closed stream;
		// the next request opens a new watch.
		c.log.Error("xDS response dropped: stream channel full", "type", typeLabel(resp.GetRequest().GetTypeUrl()))
	}
}

// sotwResponse is the state-of-the-world response to req from rs, or nil
// when the stream already has everything (see sidecarCache).
func sotwResponse(req *cachev3.Request, sub cachev3.Subscription, rs *resourceSet) cachev3.Response {
	if rs == nil {
		return nil
	}
	full := cachev3.ResourceRequiresFullStateInSotw(req.GetTypeUrl())
	changed := req.GetVersionInfo() != rs.version
	var (
		out  []*resource
		next map[string]string
	)
	if full && sub.IsWildcard() {
		// The version covers every name and encoding: equal means the
		// client has it all. No returned resources need be kept.
		if !changed {
			return nil
		}
		out = rs.sorted
	} else {
		returned := sub.ReturnedResources()
		// all is collected only for full-state types; EDS and RDS need
		// only its size (1000 streams × 8 KB of garbage per endpoint push
		// otherwise, issue 5).
		var all []*resource
		n := 0
		pick := func(r *resource) {
			n++
			if full {
				all = append(all, r)
			}
			if v, ok := returned[r.name]; !ok || v != r.version {
				out = append(out, r)
			}
		}
		subscribed := sub.SubscribedResources()
		switch {
		case sub.IsWildcard():
			for _, r := range rs.sorted {
				pick(r)
			}
		case len(subscribed)*8 >= len(rs.sorted):
			// Most of the set (a sidecar's EDS names its every cluster):
			// walk the set in order rather than sort what was picked.
			for _, r := range rs.sorted {
				if _, ok := subscribed[r.name]; ok {
					pick(r)
				}
			}
		default:
			for name := range subscribed {
				if r := rs.byName[name]; r != nil {
					pick(r)
				}
			}
			slices.SortFunc(all, byName)
			slices.SortFunc(out, byName)
		}
		if !changed && len(out) == 0 {
			return nil
		}
		if full {
			out = all // the client drops what a full-state response omits
		}
		next = returnedAfter(returned, out, n, func(name string) bool {
			_, ok := subscribed[name]
			return rs.byName[name] != nil && (ok || sub.IsWildcard())
		})
	}
	anys := make([]*anypb.Any, len(out))
	for i, r := range out {
		anys[i] = r.any
	}
	return &sotwReply{PassthroughResponse: &cachev3.PassthroughResponse{
		Request:           req,
		DiscoveryResponse: &discoveryv3.DiscoveryResponse{VersionInfo: rs.version, Resources: anys, TypeUrl: req.GetTypeUrl()},
		ReturnedResources: next,
	}, out: out}
}

// returnedAfter is what a state-of-the-world stream has been sent once it
// is sent out: returned updated with out, holding n names, those keep
// says. It is a new map: go-control-plane drops a response not yet sent
// when the next request of its type arrives, and the stream then still has
// returned. Cloning copies the table whole, cheaper than n inserts (an
// endpoint change rebuilt 1000 streams' maps of 1000 entries).
func returnedAfter(returned map[string]string, out []*resource, n int, keep func(string) bool) map[string]string {
	next := maps.Clone(returned)
	if next == nil {
		next = make(map[string]string, n)
	}
	for _, r := range out {
		next[r.name] = r.version
	}
	if len(next) != n {
		for name := range next {
			if !keep(name) {
				delete(next, name)
			}
		}
	}
	return next
}

func byName(a, b *resource) int { return strings.Compare(a.name, b.name) }
