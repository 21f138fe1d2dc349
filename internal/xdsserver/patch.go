package xdsserver

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// The endpoint-only path (issue 5). After a change that only moved
// endpoints of some hosts (change.go), a proxy's listeners, routes and every
// other cluster are what they were: nothing else a translation emits reads
// registry endpoints. patch therefore asks the translator for the clusters
// and ClusterLoadAssignments of the changed hosts only
// (translator.TranslateClusters) and swaps them into the node's last
// snapshot; with 1000 proxies that each see 1000 services this replaces
// 1000 full translations (route tables of 1000 virtual hosts each) by 1000
// small ones. Nodes whose old set and new resources are the same share one
// patched set (patches), so the set is rebuilt and hashed once, not per node.

// patchTypes are the types patch rebuilds, as servedTypes indexes: CDS, EDS.
var patchTypes = [...]int{0, 1}

// patch returns n's last snapshot with the clusters and endpoints of the
// hosts c changed rebuilt from snap, or false when it cannot tell the result
// equals a full translation's (a name appears or disappears, a resource is
// invalid, translation panics): the caller then translates in full.
// Called with n.mu held.
func (s *Server) patch(n *node, snap *snapshot.Snapshot, c *change) (*nodeSnapshot, versions, bool) {
	part, err := s.translateClusters(snap, n.proxy, c)
	if err != nil {
		s.log.Error("partial translation failed; translating in full", "node", n.id, "err", err)
		return nil, versions{}, false
	}
	out := *n.last
	var vers versions
	for i := range servedTypes {
		vers[i] = out.sets[i].version
	}
	for _, i := range patchTypes {
		in := typed(part)[i]
		old := out.sets[i]
		var (
			key     strings.Builder // old set and every replacement's digest
			changed []*resource     // replacements in old.sorted order
		)
		fmt.Fprintf(&key, "%p", old)
		for _, r := range old.sorted {
			if !c.hosts[hostOf(r.name)] {
				continue
			}
			m := in[r.name]
			if m == nil {
				return nil, versions{}, false
			}
			nr, ok := resourceOf(i, r.name, m, n.id, s.log, s.shared)
			if !ok {
				return nil, versions{}, false
			}
			changed = append(changed, nr)
			key.Write(nr.digest[:])
		}
		if len(changed) != len(in) {
			return nil, versions{}, false // a resource the node did not have
		}
		if len(changed) == 0 {
			continue
		}
		out.sets[i] = s.patches.get(snap, key.String(), func() *resourceSet {
			items := make([]*resource, len(old.sorted))
			copy(items, old.sorted)
			j := 0
			for k, r := range items {
				if j < len(changed) && changed[j].name == r.name {
					items[k] = changed[j]
					j++
				}
			}
			return s.shared.set(i, setVersion(items), items)
		})
		vers[i] = out.sets[i].version
	}
	return &out, vers, true
}

// patchListeners returns n's last snapshot with its listeners and route
// tables translated again from snap (translator.TranslateListeners), for a
// change that can alter nothing else (translator.ReachListeners: a
// VirtualService edit). The route tables come from the translator's cache,
// shared by every proxy of the same view, so they are encoded once per
// push. False when the partial translation fails; the caller then
// translates in full. Called with n.mu held.
func (s *Server) patchListeners(n *node, snap *snapshot.Snapshot) (*nodeSnapshot, versions, bool) {
	res, err := s.translateListeners(snap, n.proxy)
	if err != nil || res == nil {
		if err != nil {
			s.log.Error("partial translation failed; translating in full", "node", n.id, "err", err)
		}
		return nil, versions{}, false
	}
	out := *n.last
	var kept [len(servedTypes)]map[string]proto.Message
	in := typed(res)
	for _, i := range listenerTypes {
		out.sets[i], kept[i] = buildSet(i, in[i], references(i, kept), n.id, s.log, s.shared)
	}
	var vers versions
	for i := range servedTypes {
		vers[i] = out.sets[i].version
	}
	return &out, vers, true
}

// listenerTypes are the types patchListeners rebuilds, as servedTypes
// indexes, in order: LDS, then RDS (which keeps the routes LDS references).
var listenerTypes = [...]int{2, 3}

// translateListeners calls translator.TranslateListeners, turning a panic
// into an error.
func (s *Server) translateListeners(snap *snapshot.Snapshot, p translator.Proxy) (res *translator.Resources, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("xdsserver: translate listeners: panic: %v", r)
		}
	}()
	return translator.TranslateListeners(snap, p, s.tcache), nil
}

// translateClusters calls translator.TranslateClusters for the hosts c
// changed, turning a panic into an error.
func (s *Server) translateClusters(snap *snapshot.Snapshot, p translator.Proxy, c *change) (res *translator.Resources, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("xdsserver: translate clusters: panic: %v", r)
		}
	}()
	return translator.TranslateClusters(snap, p, s.tcache, func(h string) bool { return c.hosts[h] }), nil
}

// hostOf is HOST of an outbound|PORT|SUBSET|HOST name, else "".
func hostOf(name string) string {
	rest, ok := strings.CutPrefix(name, "outbound|")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, '|'); i >= 0 {
		return rest[i+1:]
	}
	return ""
}

// patchMemo shares patched sets between the nodes of one push: keyed by the
// old set and the digests of what replaced its entries, for the latest
// snapshot only. Safe for concurrent use.
type patchMemo struct {
	mu   sync.Mutex
	snap *snapshot.Snapshot
	sets map[string]*patchEntry
}

type patchEntry struct {
	once sync.Once
	set  *resourceSet
}

func (pm *patchMemo) get(snap *snapshot.Snapshot, key string, build func() *resourceSet) *resourceSet {
	pm.mu.Lock()
	if pm.snap != snap {
		pm.snap, pm.sets = snap, make(map[string]*patchEntry)
	}
	e := pm.sets[key]
	if e == nil {
		e = &patchEntry{}
		pm.sets[key] = e
	}
	pm.mu.Unlock()
	e.once.Do(func() { e.set = build() })
	return e.set
}
