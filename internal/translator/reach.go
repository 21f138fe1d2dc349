package translator

import (
	"cmp"
	"slices"
	"strings"

	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// Reach is what a change of VirtualServices can alter in one proxy's
// translation (issue 5: a VirtualService edit need not translate 1000
// proxies in full, nor touch those that cannot see it).
type Reach uint8

const (
	// ReachNone: the proxy's resources are what they were.
	ReachNone Reach = iota
	// ReachListeners: only its listeners and route tables may differ; they
	// are TranslateListeners'.
	ReachListeners
	// ReachAll: anything may differ; translate in full.
	ReachAll
)

// VirtualServiceReach returns what changing the VirtualServices vss can
// alter for p, when nothing else differs between the snapshot p was last
// translated from and s (config other than VirtualServices, registry and
// mesh are equal). vss holds every changed VirtualService's old and new
// versions (an added one only its new, a removed one only its old). sent
// reports whether p's last translation had outbound clusters of a hostname.
//
// What the translator reads of VirtualServices for a sidecar (builder.go,
// route.go, external.go, tcproute.go, delegate.go): the ones bound to
// "mesh" and exported to its namespace; each governs the route tables and
// TCP/TLS chains of the visible services its hosts match; their fault and
// CORS use sets the outbound HTTP listeners' filters; with a Sidecar's
// egress, the destinations of those its hosts select become visible
// (clusters). A delegate (no hosts) is merged into roots whatever its own
// exportTo says, so it reaches every proxy. Gateways read far more: they
// are always translated in full.
func VirtualServiceReach(s *snapshot.Snapshot, p Proxy, vss []*config.Resource, sent func(host string) bool) Reach {
	if len(vss) == 0 {
		return ReachNone
	}
	if p.Type == Router {
		return ReachAll
	}
	b := viewBuilder(s, p)
	eg := b.sidecar.GetEgress()
	reach := ReachNone
	for _, r := range vss {
		vs, ok := r.Spec.(*networkingv1.VirtualService)
		if !ok {
			return ReachAll
		}
		if len(vs.GetHosts()) == 0 {
			reach = max(reach, ReachListeners) // a delegate
			if len(eg) > 0 {
				return ReachAll
			}
			continue
		}
		if gws := vs.GetGateways(); len(gws) > 0 && !slices.Contains(gws, "mesh") {
			continue // not in meshVS
		}
		if !b.exportedTo(vs.GetExportTo(), r.Meta.Namespace) {
			continue
		}
		if usesRouteFilters(vs) {
			reach = max(reach, ReachListeners) // routeFiltersUsed
		}
		for _, h := range vs.GetHosts() {
			h = b.fqdn(h, r.Meta.Namespace)
			if len(eg) > 0 && slices.ContainsFunc(eg, func(e *networkingv1.IstioEgressListener) bool {
				return b.egressSelectsHost(e.GetHosts(), r.Meta.Namespace, h)
			}) {
				return ReachAll // virtualServiceDependencies: visible services may change
			}
			if strings.HasPrefix(h, "*") || sent(h) {
				reach = max(reach, ReachListeners)
			}
		}
	}
	if reach == ReachListeners && (p.Type != Sidecar || len(eg) > 0) {
		// Proxyless clients are few and their listeners are per service;
		// a Sidecar's egress listeners may depend on visibility.
		return ReachAll
	}
	return reach
}

// usesRouteFilters reports whether vs's HTTP routes use fault injection or
// CORS, which put filters on the outbound HTTP listeners.
func usesRouteFilters(vs *networkingv1.VirtualService) bool {
	return slices.ContainsFunc(vs.GetHttp(), func(hr *networkingv1.HTTPRoute) bool {
		return hr.GetFault() != nil || hr.GetCorsPolicy() != nil
	})
}

// viewBuilder is a builder with only what VirtualServiceReach reads: the
// proxy's namespace, workload and Sidecar; no visibility, no output.
func viewBuilder(s *snapshot.Snapshot, p Proxy) *builder {
	b := &builder{
		snap:  s,
		reg:   cmp.Or(s.Registry, &registry.Registry{}),
		mesh:  s.Mesh,
		proxy: p,
		ns:    cmp.Or(p.Namespace, config.DefaultNamespace),
	}
	b.mesh.DomainSuffix = cmp.Or(b.mesh.DomainSuffix, "cluster.local")
	if p.Name != "" {
		b.wl = b.reg.Workload(b.ns, p.Name)
	}
	if b.wl != nil {
		b.labels = b.wl.Labels
	}
	if p.Type != Router {
		b.sidecar = b.selectSidecar()
	}
	return b
}

// TranslateListeners returns only the listeners and route tables of a
// sidecar's translation, each equal to what TranslateCached(s, p, c)
// returns under the same name (route tables shared with it through c),
// plus the inbound and passthrough clusters they are built with. It is what
// a change that VirtualServiceReach says reaches ReachListeners needs. It
// returns nil for other proxy types.
func TranslateListeners(s *snapshot.Snapshot, p Proxy, c *Cache) *Resources {
	if p.Type != Sidecar {
		return nil
	}
	b := newBuilder(s, p, c)
	b.buildSidecar()
	b.applySecurity()
	return b.out
}
