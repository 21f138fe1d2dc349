package translator

import (
	"strconv"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// Cache memoizes, for one snapshot at a time, the translation work that
// does not depend on the individual proxy, so that a push to many proxies
// builds each outbound cluster and ClusterLoadAssignment once per distinct
// set of inputs instead of once per proxy (issue 5: 1000 proxies × 1000
// services):
//
//   - the DestinationRule chosen for a service, by (proxy namespace, service);
//   - each outbound cluster with its ClusterLoadAssignment, by every input
//     it is built from: service, port, subset, the DestinationRule chosen
//     (which carries the proxy's namespace), whether the proxy is proxyless
//     (no mesh mTLS), and the proxy's locality, network and labels as far as
//     locality load balancing reads them (see localityKey);
//   - the default route of a service port without a VirtualService, by host,
//     port and the DestinationRule that sets its hash policy;
//   - each sidecar outbound route table (a port's and http_proxy's), by the
//     proxy's view (viewKey: type, namespace, Sidecar, and its labels only
//     when some VirtualService matches on sourceLabels), its name and port:
//     1000 unscoped sidecars of one namespace share one table of 1000
//     virtual hosts instead of building, validating and encoding 1000.
//
// Messages handed out from a Cache are shared between every Resources built
// with it: callers MUST NOT modify them (xdsserver only validates, marshals
// and hands them to its cache).
//
// The first translation against a newer snapshot (a different pointer with a
// Version at least the current one) drops every entry; translations against
// an older snapshot bypass the cache. A Cache is safe for concurrent use;
// the zero value is not usable, use NewCache. A nil *Cache caches nothing.
type Cache struct {
	mu       sync.Mutex
	snap     *snapshot.Snapshot
	drs      map[drKey]*networkingv1.DestinationRule
	clusters map[clusterKey]outboundCluster
	routes   map[routeKey][]*routev3.Route
	tables   map[tableKey]*routev3.RouteConfiguration
	// sourceLabels: some VirtualService of snap matches on sourceLabels,
	// so route tables also depend on the proxy's labels. Set by use.
	sourceLabels bool
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

// TranslateCached is Translate with the proxy-independent work memoized in
// c (nil: none). Its result is equal to Translate's (proto.Equal per
// resource); clusters, endpoints and routes in it may be shared with other
// results from c and MUST NOT be modified.
func TranslateCached(s *snapshot.Snapshot, p Proxy, c *Cache) *Resources {
	return translate(s, p, c)
}

// TranslateClusters returns only the outbound clusters of the visible
// services whose hostname passes hosts, and their ClusterLoadAssignments,
// each equal to what TranslateCached(s, p, c) returns under the same name
// (and shared with it through c). Nothing else a translation emits reads
// registry endpoints (cluster.go, security_mtls.go), so after a change that
// only moved endpoints of some hosts, a proxy's other resources stay as they
// were and these are all that can differ (issue 5: xdsserver patches its
// last result instead of translating every proxy again).
func TranslateClusters(s *snapshot.Snapshot, p Proxy, c *Cache, hosts func(host string) bool) *Resources {
	b := newBuilder(s, p, c)
	b.buildOutboundClusters(hosts)
	return b.out
}

// drKey: destinationRule reads the proxy's namespace and the service.
type drKey struct {
	ns  string
	svc *registry.Service
}

// clusterKey holds every input of newOutboundCluster (cluster.go). Pointers
// are stable within one snapshot, which is all a Cache holds.
type clusterKey struct {
	svc       *registry.Service
	port      int // index into svc.Ports
	subset    int // index into dr.Subsets; -1 for the subset-less cluster
	dr        *networkingv1.DestinationRule
	proxyless bool   // upstreamTLS leaves proxyless clusters alone
	locality  string // localityKey
}

// routeKey holds every input of a default route (serviceRoutes, route.go).
type routeKey struct {
	host string
	port uint32
	dr   *networkingv1.DestinationRule // of the service clusterHashPolicy picks
}

// outboundCluster is one built cluster; eds is its ClusterLoadAssignment
// when the cluster is EDS, else nil.
type outboundCluster struct {
	cluster *clusterv3.Cluster
	eds     *endpointv3.ClusterLoadAssignment
}

// memo returns table[k] for snapshot s, calling build on a miss. build runs
// without the lock held; when two callers race, the first stored value wins
// so that every caller shares it.
func memo[K comparable, V any](c *Cache, s *snapshot.Snapshot, table func(*Cache) map[K]V, k K, build func() V) V {
	if c == nil {
		return build()
	}
	c.mu.Lock()
	if !c.use(s) {
		c.mu.Unlock()
		return build()
	}
	v, ok := table(c)[k]
	c.mu.Unlock()
	if ok {
		return v
	}
	v = build()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != s {
		return v // a newer snapshot arrived meanwhile
	}
	if prev, ok := table(c)[k]; ok {
		return prev
	}
	table(c)[k] = v
	return v
}

// use makes s the cache's snapshot when it is not older, dropping every
// entry of the previous one, and reports whether entries for s may be read
// and stored. Called with mu held.
func (c *Cache) use(s *snapshot.Snapshot) bool {
	switch {
	case c.snap == s:
		return true
	case c.snap != nil && s.Version < c.snap.Version:
		return false
	}
	c.snap = s
	c.drs = make(map[drKey]*networkingv1.DestinationRule)
	c.clusters = make(map[clusterKey]outboundCluster)
	c.routes = make(map[routeKey][]*routev3.Route)
	c.tables = make(map[tableKey]*routev3.RouteConfiguration)
	c.sourceLabels = usesSourceLabels(s)
	return true
}

func cacheDRs(c *Cache) map[drKey]*networkingv1.DestinationRule { return c.drs }
func cacheClusters(c *Cache) map[clusterKey]outboundCluster     { return c.clusters }
func cacheRoutes(c *Cache) map[routeKey][]*routev3.Route        { return c.routes }
func cacheTables(c *Cache) map[tableKey]*routev3.RouteConfiguration {
	return c.tables
}

// tableKey holds every input of a sidecar's outbound route table
// (outboundRouteConfig, httpProxyRouteConfig in route.go): the proxy's view
// and which table.
type tableKey struct {
	view viewKey
	name string
	port uint32
}

// viewKey is what a sidecar's (or proxyless client's) outbound route tables
// read of the proxy: its type, namespace (visibility, DestinationRules,
// short names, sourceNamespace matches), the Sidecar that applies (egress
// scope; nil for none) and, only when a VirtualService of the snapshot
// matches on sourceLabels, its labels. Nothing else of the proxy is read
// when routes are built (virtualservice.go, hashpolicy.go, delegate.go).
type viewKey struct {
	typ     ProxyType
	ns      string
	sidecar *networkingv1.Sidecar
	labels  string // labelsKey when the snapshot needs it, else ""
}

// view returns b's viewKey, reading the cache's per-snapshot facts.
func (b *builder) view() (viewKey, bool) {
	k := viewKey{typ: b.proxy.Type, ns: b.ns, sidecar: b.sidecar}
	b.cache.mu.Lock()
	ok := b.cache.use(b.snap)
	needLabels := b.cache.sourceLabels
	b.cache.mu.Unlock()
	if needLabels {
		k.labels = labelsKey(b.labels, b.wl != nil)
	}
	return k, ok
}

// labelsKey is an unambiguous encoding of a workload's labels; a proxy
// without a workload (known false) differs from one with no labels.
func labelsKey(labels map[string]string, known bool) string {
	if !known {
		return "\x00"
	}
	var k strings.Builder
	for _, n := range sortedKeys(labels) {
		k.WriteString(strconv.Quote(n))
		k.WriteByte('=')
		k.WriteString(strconv.Quote(labels[n]))
		k.WriteByte(',')
	}
	return k.String()
}

// usesSourceLabels reports whether any VirtualService of s, delegates
// included, has an HTTP match on sourceLabels.
func usesSourceLabels(s *snapshot.Snapshot) bool {
	if s.Config == nil {
		return false
	}
	for _, r := range s.Config.List(config.KindVirtualService) {
		vs, ok := r.Spec.(*networkingv1.VirtualService)
		if !ok {
			continue
		}
		for _, hr := range vs.GetHttp() {
			for _, m := range hr.GetMatch() {
				if len(m.GetSourceLabels()) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// routeTable returns the route table name on port that build makes for b,
// shared with every proxy of the same view when b has a cache. Only
// sidecars' outbound tables go through it; gateways read far more of the
// proxy.
func (b *builder) routeTable(name string, port uint32, build func() *routev3.RouteConfiguration) *routev3.RouteConfiguration {
	if b.cache == nil || b.proxy.Type == Router {
		return build()
	}
	v, ok := b.view()
	if !ok {
		return build() // an older snapshot: the cache is not for it
	}
	return memo(b.cache, b.snap, cacheTables, tableKey{view: v, name: name, port: port}, build)
}

// localityKey is what applyLocalityLB and failoverPriority read of the proxy
// for a cluster with policy pol: nothing ("") when neither applies, which is
// the common case (no outlier detection, no distribute), else its locality
// and, for failoverPriority, the proxy-side value of each label compared.
func (b *builder) localityKey(pol trafficPolicy) string {
	s := localitySetting(pol)
	if s == nil || (len(s.GetDistribute()) == 0 && pol.outlier == nil) {
		return ""
	}
	var loc, network string
	if b.wl != nil {
		loc, network = b.wl.Locality, b.wl.Network
	}
	var k strings.Builder
	k.WriteString(strconv.Quote(loc))
	if failoverEnabled(pol) && len(s.GetFailoverPriority()) > 0 { // failoverPriority applies
		for _, fk := range s.GetFailoverPriority() {
			key, _, fixed := strings.Cut(fk, "=")
			if !fixed {
				k.WriteString(strconv.Quote(topologyLabel(b.labels, loc, network, key)))
			}
		}
	}
	return k.String()
}
