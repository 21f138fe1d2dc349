package xdsserver

import (
	"log/slog"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

// servedTypes are the xDS types Trellis serves, in the order Envoy wants them
// on an ADS stream (CDS, EDS, LDS, RDS).
var servedTypes = [...]struct{ url string }{
	{resourcev3.ClusterType},
	{resourcev3.EndpointType},
	{resourcev3.ListenerType},
	{resourcev3.RouteType},
}

// versions holds one version string per served type, in servedTypes order.
type versions [len(servedTypes)]string

// typed splits a translator result into the served types' maps.
func typed(r *translator.Resources) [len(servedTypes)]map[string]proto.Message {
	if r == nil {
		return [len(servedTypes)]map[string]proto.Message{}
	}
	return [len(servedTypes)]map[string]proto.Message{r.Clusters, r.Endpoints, r.Listeners, r.Routes}
}

// validator is implemented by every Envoy API message (protoc-gen-validate).
type validator interface{ Validate() error }

// build validates every resource, drops (and logs) the invalid ones, drops
// routes no kept listener references and endpoints no kept EDS cluster
// references, and returns the cache snapshot with one version per type: a
// hash of that type's names and deterministic encodings, so identical
// resources always give the same version and an unchanged type is never
// re-sent.
//
// Unreferenced resources must go: in ADS mode the cache answers an RDS or
// EDS request only when every resource of the type is among the names asked
// for, and a proxy asks only for what its listeners and clusters reference,
// so one stray route would hold back every route update.
//
// The cache's Consistent() is deliberately not called: it requires every RDS
// resource to be referenced by an HttpConnectionManager in a socket listener
// and rejects the API listeners that proxyless gRPC clients get.
//
// Identical resources are shared between proxies through shared (nil: none).
func build(r *translator.Resources, node string, log *slog.Logger, shared *interner) (*nodeSnapshot, versions) {
	var (
		snap nodeSnapshot
		vers versions
		kept [len(servedTypes)]map[string]proto.Message
	)
	in := typed(r)
	for i := range servedTypes {
		snap.sets[i], kept[i] = buildSet(i, in[i], references(i, kept), node, log, shared)
		vers[i] = snap.sets[i].version
	}
	return &snap, vers
}

// references returns the names type i may hold given the kept resources
// of the types before it: EDS the clusters' EDS names, RDS the listeners'
// route names; nil (no restriction) for the others.
func references(i int, kept [len(servedTypes)]map[string]proto.Message) map[string]bool {
	switch servedTypes[i].url {
	case resourcev3.EndpointType:
		return edsReferences(kept[0])
	case resourcev3.RouteType:
		return routeReferences(kept[2])
	}
	return nil
}

// buildSet is build for one type, servedTypes[i]: the shared set of the
// valid resources of in that refs (nil: any) names, and those resources'
// messages by name.
func buildSet(i int, in map[string]proto.Message, refs map[string]bool, node string, log *slog.Logger, shared *interner) (*resourceSet, map[string]proto.Message) {
	names := slices.Sorted(maps.Keys(in))
	items := make([]*resource, 0, len(names))
	kept := make(map[string]proto.Message, len(names))
	for _, name := range names {
		m := in[name]
		if m == nil {
			continue
		}
		if refs != nil && !refs[name] {
			log.Warn("dropping unreferenced resource", "node", node, "type", typeLabel(servedTypes[i].url), "name", name)
			continue
		}
		res, ok := resourceOf(i, name, m, node, log, shared)
		if !ok {
			continue
		}
		items = append(items, res)
		kept[name] = res.msg
	}
	return shared.set(i, setVersion(items), items), kept
}

// resourceOf returns the shared resource for message m, named name, of
// servedTypes[i], encoding and validating it unless the interner knows it;
// false (after logging) when it is invalid.
func resourceOf(i int, name string, m proto.Message, node string, log *slog.Logger, shared *interner) (*resource, bool) {
	if byIdentity[i] {
		// shared by the translator and encoded for another proxy
		if res, _, known := shared.lookup(m); known {
			return res, true
		}
	}
	res, d, ok := encode(servedTypes[i].url, m, node, name, log, shared)
	if ok && byIdentity[i] {
		shared.remember(m, d)
	}
	return res, ok
}

// byIdentity marks the types, in servedTypes order, whose messages the
// translator shares between proxies (translator.TranslateCached): their
// digests are remembered by identity. Sidecars' outbound route tables are
// shared per view (1000 unscoped sidecars of a namespace: one table of 1000
// virtual hosts, encoded and validated once); listeners are built per
// proxy, and remembering them would only keep garbage alive.
var byIdentity = [len(servedTypes)]bool{true, true, false, true}

// encode returns the shared resource equal to m and its digest: m itself,
// encoded, when it is the first of its kind, then validated. An equal
// message was validated when it was first interned, so a known digest skips
// Validate, which costs more than the encoding for large route tables (the
// domain regexes). False (after logging) when m is invalid or cannot be
// encoded.
func encode(typeURL string, m proto.Message, node, name string, log *slog.Logger, shared *interner) (*resource, digest, bool) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		log.Error("dropping unencodable resource", "node", node, "type", typeLabel(typeURL),
			"name", name, "err", err)
		return nil, digest{}, false
	}
	d := digestOf(typeURL, b)
	if r, ok := shared.get(d); ok {
		return r, d, true
	}
	if v, ok := m.(validator); ok {
		if err := v.Validate(); err != nil {
			log.Error("dropping invalid resource", "node", node, "type", typeLabel(typeURL),
				"name", name, "err", err)
			return nil, digest{}, false
		}
	}
	return shared.intern(d, newResource(typeURL, name, m, b, d)), d, true
}

// edsReferences returns the EDS service names of the EDS clusters; a
// cluster without one uses its own name, as Envoy does. Never nil.
func edsReferences(clusters map[string]proto.Message) map[string]bool {
	refs := make(map[string]bool)
	for _, m := range clusters {
		c, ok := m.(*clusterv3.Cluster)
		if !ok || c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
			refs[n] = true
		} else {
			refs[c.GetName()] = true
		}
	}
	return refs
}

// routeReferences returns the RDS route names used by the listeners'
// HttpConnectionManagers, in filter chains and in API listeners. Never nil.
func routeReferences(listeners map[string]proto.Message) map[string]bool {
	refs := make(map[string]bool)
	add := func(hcm *hcmv3.HttpConnectionManager) {
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			refs[n] = true
		}
	}
	for _, m := range listeners {
		l, ok := m.(*listenerv3.Listener)
		if !ok {
			continue
		}
		chains := l.GetFilterChains()
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(slices.Clip(chains), dc)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				if hcm := resourcev3.GetHTTPConnectionManager(f); hcm != nil {
					add(hcm)
				}
			}
		}
		if a := l.GetApiListener().GetApiListener(); a != nil {
			hcm := &hcmv3.HttpConnectionManager{}
			if a.UnmarshalTo(hcm) == nil {
				add(hcm)
			}
		}
	}
	return refs
}
