package xdsserver

import (
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unique"

	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// change is what differs between two snapshots, as far as the translator
// can see it. When full is false the snapshots differ either only in
// endpoints and workloads, or only in VirtualServices:
//
//   - endpoints: a proxy is affected only when it was sent a cluster or
//     ClusterLoadAssignment of one of hosts, or when its own workload is
//     among workloads: nothing else the translator emits reads endpoints
//     (they are read only to build outbound clusters, cluster.go and
//     security_mtls.go in internal/translator), and only the proxy's own
//     workload is read by namespace/name;
//   - VirtualServices (vss: the old and new versions of each one added,
//     removed or changed): translator.VirtualServiceReach tells per proxy
//     whether nothing, only listeners and routes, or anything may differ.
type change struct {
	full      bool
	hosts     map[string]bool    // hostnames whose registry endpoints differ
	workloads map[string]bool    // "namespace/name" of WorkloadEntries or registry workloads that differ
	vss       []*config.Resource // VirtualServices that differ, old and new versions
}

// fullChange recomputes every proxy.
var fullChange = &change{full: true}

// diff classifies the change from old to next. Anything it does not
// recognise as endpoint-only or VirtualService-only is a full change: a
// proxy must never miss a change that affects it.
func diff(old, next *snapshot.Snapshot) *change {
	if old == nil || next == nil {
		return fullChange
	}
	if !reflect.DeepEqual(old.Mesh, next.Mesh) {
		return fullChange
	}
	c := &change{hosts: map[string]bool{}, workloads: map[string]bool{}}
	if old.Config != next.Config && !configDiff(old.Config, next.Config, c) {
		return fullChange
	}
	r0, r1 := cmp.Or(old.Registry, &registry.Registry{}), cmp.Or(next.Registry, &registry.Registry{})
	if r0 == r1 {
		return c.classified()
	}
	if !slices.EqualFunc(r0.Services, r1.Services, serviceEqual) {
		return fullChange
	}
	for k, w := range r1.Workloads {
		if w0, ok := r0.Workloads[k]; !ok || !workloadEqual(w0, w) {
			c.workloads[k] = true
		}
	}
	for k := range r0.Workloads {
		if _, ok := r1.Workloads[k]; !ok {
			c.workloads[k] = true
		}
	}
	// The translator reads endpoints only through EndpointsOf(service), and
	// the services are equal, so comparing per service is complete.
	for i, svc := range r1.Services {
		if !slices.EqualFunc(r0.EndpointsOf(r0.Services[i]), r1.EndpointsOf(svc), endpointEqual) {
			c.hosts[svc.Hostname] = true
		}
	}
	return c.classified()
}

// classified is c, or fullChange when c mixes VirtualServices with
// endpoints or workloads (rare: one classification each is enough).
func (c *change) classified() *change {
	if len(c.vss) > 0 && (len(c.hosts) > 0 || len(c.workloads) > 0) {
		return fullChange
	}
	return c
}

// configDiff reports whether a and b differ only in WorkloadEntries and
// VirtualServices, adding to c the namespace/name of every WorkloadEntry
// added, removed or changed and the versions of every VirtualService
// added, removed or changed. configdir keeps the pointers of resources in
// unchanged files; a changed file yields new pointers for all its
// resources, so equal pointers short-cut and different ones are compared
// by content.
func configDiff(a, b *config.Set, c *change) bool {
	for _, k := range config.Kinds() {
		la, lb := a.List(k), b.List(k)
		switch k {
		case config.KindWorkloadEntry:
			mergeDiff(la, lb, func(old, next *config.Resource) {
				r := cmp.Or(next, old)
				c.workloads[r.Meta.Namespace+"/"+r.Meta.Name] = true
			})
		case config.KindVirtualService:
			mergeDiff(la, lb, func(old, next *config.Resource) {
				for _, r := range []*config.Resource{old, next} {
					if r != nil {
						c.vss = append(c.vss, r)
					}
				}
			})
		default:
			if !slices.EqualFunc(la, lb, resourceEqual) {
				return false
			}
		}
	}
	return true
}

// mergeDiff calls differ with the old and new versions (nil when absent) of
// every resource added, removed or changed from la to lb, both sorted by
// namespace, then name.
func mergeDiff(la, lb []*config.Resource, differ func(old, next *config.Resource)) {
	i, j := 0, 0
	for i < len(la) || j < len(lb) {
		var c int
		switch {
		case i == len(la):
			c = 1
		case j == len(lb):
			c = -1
		default:
			c = cmp.Or(cmp.Compare(la[i].Meta.Namespace, lb[j].Meta.Namespace), cmp.Compare(la[i].Meta.Name, lb[j].Meta.Name))
		}
		switch {
		case c < 0:
			differ(la[i], nil)
			i++
		case c > 0:
			differ(nil, lb[j])
			j++
		default:
			if !resourceEqual(la[i], lb[j]) {
				differ(la[i], lb[j])
			}
			i++
			j++
		}
	}
}

// resourceEqual compares what the translator can read of a resource: its
// identity, metadata and spec. Origin (file and line) is not read. Gateway
// API objects are only equal by identity.
func resourceEqual(a, b *config.Resource) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Kind != b.Kind || a.GatewayAPI != nil || b.GatewayAPI != nil {
		return false
	}
	return reflect.DeepEqual(a.Meta, b.Meta) && proto.Equal(a.Spec, b.Spec)
}

func serviceEqual(a, b *registry.Service) bool {
	return a == b || (a != nil && b != nil && reflect.DeepEqual(*a, *b))
}

func workloadEqual(a, b *registry.Workload) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Name == b.Name && a.Namespace == b.Namespace && a.Address == b.Address &&
		a.ServiceAccount == b.ServiceAccount && a.Locality == b.Locality && a.Network == b.Network &&
		a.Weight == b.Weight && maps.Equal(a.Ports, b.Ports) && maps.Equal(a.Labels, b.Labels)
}

// endpointEqual compares every field of two endpoints; the order of a
// service's endpoints is compared by the caller.
func endpointEqual(a, b *registry.Endpoint) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Address == b.Address && a.ServiceAccount == b.ServiceAccount && a.Weight == b.Weight &&
		a.Locality == b.Locality && a.Network == b.Network && a.Namespace == b.Namespace &&
		a.WorkloadName == b.WorkloadName && a.Healthy == b.Healthy &&
		maps.Equal(a.Ports, b.Ports) && maps.Equal(a.Labels, b.Labels)
}

// reach reports what c can change for a proxy p whose last translation
// sent clusters or endpoints of hosts (sorted) and whose own workload is wl
// ("" for none), next being the snapshot c leads to.
func (c *change) reach(next *snapshot.Snapshot, p translator.Proxy, hosts []unique.Handle[string], wl string) translator.Reach {
	switch {
	case c.full:
		return translator.ReachAll
	case len(c.vss) > 0:
		return translator.VirtualServiceReach(next, p, c.vss, func(h string) bool {
			_, ok := slices.BinarySearchFunc(hosts, h, compareHost)
			return ok
		})
	case c.affects(hosts, wl):
		return translator.ReachAll // endpoints: compute patches what it can
	}
	return translator.ReachNone
}

// affects reports whether c can change the resources of a proxy whose last
// translation sent clusters or endpoints of hosts (sorted) and whose own
// workload is wl ("" for none).
func (c *change) affects(hosts []unique.Handle[string], wl string) bool {
	if c.full || (wl != "" && c.workloads[wl]) {
		return true
	}
	for h := range c.hosts {
		if _, ok := slices.BinarySearchFunc(hosts, h, compareHost); ok {
			return true
		}
	}
	return false
}

func compareHost(e unique.Handle[string], h string) int { return strings.Compare(e.Value(), h) }

// outboundHosts returns, sorted and without duplicates, the HOSTs of the
// outbound|PORT|SUBSET|HOST clusters and endpoints in r: the only resources
// built from registry endpoints. Handles keep one copy of each hostname
// for all proxies.
func outboundHosts(r *translator.Resources) []unique.Handle[string] {
	if r == nil {
		return nil
	}
	var out []unique.Handle[string]
	for _, names := range []map[string]proto.Message{r.Clusters, r.Endpoints} {
		for name := range names {
			rest, ok := strings.CutPrefix(name, "outbound|")
			if !ok {
				continue
			}
			if i := strings.LastIndexByte(rest, '|'); i >= 0 {
				out = append(out, unique.Make(rest[i+1:]))
			}
		}
	}
	slices.SortFunc(out, func(a, b unique.Handle[string]) int { return strings.Compare(a.Value(), b.Value()) })
	return slices.Compact(out)
}

// hostLists shares equal outboundHosts lists between nodes: 1000 unscoped
// sidecars hold one list of 1000 handles, not 1000 (issue 5: ~20 MB).
// Lists are found by the versions of the node's cluster and endpoint sets
// and shared only when equal, so sharing never changes a node's list.
// Safe for concurrent use.
type hostLists struct {
	mu sync.Mutex
	m  map[versions][]unique.Handle[string]
}

// maxHostLists bounds the table; it is emptied when full (sharing is an
// optimisation: a node keeps its own list meanwhile).
const maxHostLists = 4096

// share returns a list equal to hosts, the one already known for vers
// when there is one.
func (h *hostLists) share(vers versions, hosts []unique.Handle[string]) []unique.Handle[string] {
	vers[2], vers[3] = "", "" // listeners and routes do not name hosts
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.m[vers]; ok && slices.Equal(prev, hosts) {
		return prev
	}
	if h.m == nil || len(h.m) >= maxHostLists {
		h.m = make(map[versions][]unique.Handle[string])
	}
	h.m[vers] = hosts
	return hosts
}

// ownWorkload is the registry key of the workload the translator reads for
// p (builder.go in internal/translator); "" when it reads none.
func ownWorkload(p translator.Proxy) string {
	if p.Name == "" {
		return ""
	}
	return cmp.Or(p.Namespace, config.DefaultNamespace) + "/" + p.Name
}

// differ memoizes diff for one push: every node computed from the same
// snapshot shares one classification. Safe for concurrent use.
type differ struct {
	mu    sync.Mutex
	next  *snapshot.Snapshot
	byOld map[*snapshot.Snapshot]*diffEntry
}

type diffEntry struct {
	once sync.Once
	c    *change
}

// get returns diff(old, next), computing it once per pair while next is
// the latest asked for; a newer next forgets the older results.
func (d *differ) get(old, next *snapshot.Snapshot) *change {
	d.mu.Lock()
	if d.next != next {
		d.next, d.byOld = next, make(map[*snapshot.Snapshot]*diffEntry)
	}
	e := d.byOld[old]
	if e == nil {
		e = &diffEntry{}
		d.byOld[old] = e
	}
	d.mu.Unlock()
	e.once.Do(func() { e.c = diff(old, next) })
	return e.c
}
