package xdsserver

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// node is one connected proxy, identified by node.id. It exists while at
// least one of its streams is open.
type node struct {
	id    string
	proxy translator.Proxy
	cache nodeCache
	since time.Time

	// Guarded by Server.mu.
	streams int
	types   map[string]*typeState // by type URL

	// snapVersion is the snapshot.Version the node's resources were last
	// computed from, whether or not that changed them.
	snapVersion atomic.Uint64

	// mu serialises computations for this node, so a slow one can never
	// overwrite a newer one. Lock order: node.mu, then Server.mu.
	mu     sync.Mutex
	closed bool     // guarded by mu: the last stream closed
	set    bool     // guarded by mu: a snapshot was set
	vers   versions // guarded by mu: the versions last set
	// last is the snapshot last set, the base of patch. Guarded by mu.
	last *nodeSnapshot
	// snap is the snapshot the node's resources were last translated from,
	// or found unaffected by; hosts are the HOSTs of the outbound clusters
	// and endpoints that translation returned (before build dropped any),
	// sorted. Guarded by mu. See change.go.
	snap  *snapshot.Snapshot
	hosts []unique.Handle[string]

	// translations counts calls of Options.Translate or patch for this
	// node, patches those of patch (tests).
	translations, patches atomic.Uint64
}

// typeState is the delivery state of one xDS type to one node.
type typeState struct {
	sent     string // version of the last response sent
	acked    string // version the proxy last accepted
	pushes   uint64
	nack     string // last NACK's message, kept after later ACKs (nackTime dates it)
	nackTime time.Time
}

// stream is one ADS stream (state-of-the-world or delta).
type stream struct {
	node *node // nil until the first request names the node
	// nonces holds each served type's recent response nonces with the
	// version they carried, so an ACK or NACK can be matched to what it
	// answers; by servedTypes index, in fixed rings (a map of growing
	// slices was ~2 KB per stream, issue 5). Guarded by Server.mu.
	nonces [len(servedTypes)]nonceRing
}

type sentNonce struct{ nonce, version string }

// maxNonces bounds the per-type history: proxies answer the latest response
// or one shortly before it.
const maxNonces = 8

// nonceRing is one type's last maxNonces responses.
type nonceRing struct {
	sent [maxNonces]sentNonce
	next int // where the next one goes
}

func (st *stream) recordNonce(typeURL, nonce, version string) {
	typ := typeIndex(typeURL)
	if typ < 0 {
		return // Trellis sends no other type
	}
	r := &st.nonces[typ]
	r.sent[r.next] = sentNonce{nonce, version}
	r.next = (r.next + 1) % maxNonces
}

func (st *stream) versionOf(typeURL, nonce string) (string, bool) {
	typ := typeIndex(typeURL)
	if typ < 0 || nonce == "" {
		return "", false
	}
	for _, sn := range st.nonces[typ].sent {
		if sn.nonce == nonce {
			return sn.version, true
		}
	}
	return "", false
}

// streamKey tells streams apart: go-control-plane's state-of-the-world and
// delta servers and the server's own delta streams (delta.go, own) number
// their streams independently.
type streamKey struct {
	delta bool
	own   bool
	id    int64
}

// attach binds a stream to the node named by its first request, creating
// the node on first sight. It reports whether the node is new, in which case
// the caller computes its snapshot before the cache sees the request, so the
// first response is immediate.
func (s *Server) attach(k streamKey, n *corev3.Node) (*node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil { // a request after close; cannot happen, but never crash
		st = &stream{}
		s.streams[k] = st
	}
	if st.node != nil {
		return st.node, false
	}
	id := n.GetId()
	nd := s.nodes[id]
	fresh := nd == nil
	if fresh {
		nd = &node{
			id:    id,
			proxy: s.parseNode(n),
			cache: s.sidecars,
			since: time.Now(),
			types: make(map[string]*typeState),
		}
		if cacheKey(n) == keyProxyless {
			nd.cache = s.proxyless
		}
		s.nodes[id] = nd
		s.metrics.proxies.Inc()
		s.log.Info("proxy connected", "node", id, "delta", k.delta)
	}
	nd.streams++
	st.node = nd
	return nd, fresh
}

// detach forgets a closed stream; when it was its node's last, the node's
// snapshot is cleared from the cache.
func (s *Server) detach(k streamKey) {
	s.mu.Lock()
	st := s.streams[k]
	delete(s.streams, k)
	var gone *node
	if st != nil && st.node != nil {
		st.node.streams--
		if st.node.streams == 0 {
			gone = st.node
			delete(s.nodes, gone.id)
			s.metrics.proxies.Dec()
		}
	}
	s.mu.Unlock()
	if gone == nil {
		return
	}
	gone.mu.Lock()
	defer gone.mu.Unlock()
	gone.closed = true
	s.mu.Lock()
	defer s.mu.Unlock()
	// A new stream for the same id may have created a fresh node meanwhile;
	// its snapshot (set after the node was created) must survive.
	if cur := s.nodes[gone.id]; cur == nil || cur.cache != gone.cache {
		gone.cache.ClearSnapshot(gone.id)
	}
	s.log.Info("proxy disconnected", "node", gone.id)
}

// compute translates the latest snapshot for n and sets it in the cache when
// any type's version changed. With the built-in translator it first skips
// a node the change since its last translation cannot affect (change.go),
// reporting true.
func (s *Server) compute(n *node) (skipped bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	s.mu.Lock()
	snap, updated := s.latest, s.updated
	s.mu.Unlock()
	if snap == nil {
		return false // nothing published yet; the first Update pushes
	}
	if s.incremental && n.snap != nil {
		c := fullChange
		if n.snap != snap {
			c = s.diffs.get(n.snap, snap)
		}
		reach := translator.ReachNone
		if n.snap != snap {
			reach = c.reach(snap, n.proxy, n.hosts, ownWorkload(n.proxy))
		}
		if reach == translator.ReachNone {
			// Translation is pure: this proxy's resources are the same.
			n.snap = snap
			n.snapVersion.Store(snap.Version)
			return true
		}
		if reach == translator.ReachListeners && n.last != nil {
			if cs, vers, ok := s.patchListeners(n, snap); ok {
				n.translations.Add(1)
				n.patches.Add(1)
				s.publish(n, snap, updated, cs, vers, n.hosts)
				return false
			}
		}
		if !c.full && len(c.vss) == 0 && !c.workloads[ownWorkload(n.proxy)] && n.last != nil {
			if cs, vers, ok := s.patch(n, snap, c); ok {
				n.translations.Add(1)
				n.patches.Add(1)
				s.publish(n, snap, updated, cs, vers, n.hosts)
				return false
			}
		}
	}
	n.translations.Add(1)
	res, err := s.translate(snap, n.proxy)
	if err != nil {
		s.log.Error("translation failed; proxy keeps its previous config", "node", n.id,
			"version", snap.Version, "err", err)
		return false
	}
	cs, vers := build(res, n.id, s.log, s.shared)
	var hosts []unique.Handle[string]
	if s.incremental {
		hosts = s.hostLists.share(vers, outboundHosts(res))
	}
	s.publish(n, snap, updated, cs, vers, hosts)
	return false
}

// publish hands n's new snapshot cs, computed from snap, to the cache when
// any type's version changed. hosts are the outbound hosts of the
// translation (change.go). Called with n.mu held.
func (s *Server) publish(n *node, snap *snapshot.Snapshot, updated time.Time, cs *nodeSnapshot, vers versions, hosts []unique.Handle[string]) {
	n.snapVersion.Store(snap.Version)
	// The node's resources follow snap only once the cache holds them; until
	// then the next change is classified from the older snapshot.
	done := func() {
		if s.incremental {
			n.snap, n.hosts = snap, hosts
		}
	}
	if n.set && vers == n.vers {
		done()
		return // nothing this proxy sees changed
	}
	if err := n.cache.SetSnapshot(s.ctx, n.id, cs); err != nil {
		s.log.Error("set snapshot", "node", n.id, "err", err)
		return
	}
	n.set, n.vers, n.last = true, vers, cs
	done()
	s.metrics.convergence.Observe(time.Since(updated).Seconds())
}

// translate calls Options.Translate, turning a panic into an error so a bug
// in translation never takes the control plane down.
func (s *Server) translate(snap *snapshot.Snapshot, p translator.Proxy) (res *translator.Resources, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("xdsserver: translate: panic: %v", r)
		}
	}()
	return s.opts.Translate(snap, p), nil
}

// parseNode calls Options.ParseNode, falling back to a proxyless identity
// when it panics.
func (s *Server) parseNode(n *corev3.Node) (p translator.Proxy) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("parse node: panic", "node", n.GetId(), "panic", r)
			p = translator.Proxy{ID: n.GetId(), Type: translator.Proxyless}
		}
	}()
	return s.opts.ParseNode(n)
}
