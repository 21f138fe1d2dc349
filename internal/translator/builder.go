package translator

import (
	"cmp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// builder carries what every step of one translation needs: the inputs and
// the facts derived from them once (workload, Sidecar, visible services).
// It lives for one Translate call.
type builder struct {
	snap    *snapshot.Snapshot
	reg     *registry.Registry // never nil
	mesh    snapshot.Mesh
	proxy   Proxy
	ns      string             // the proxy's config namespace
	wl      *registry.Workload // nil when the proxy fronts no known workload
	addr    string             // the workload's address, else the node's IP; may be empty
	labels  map[string]string  // the workload's labels; nil without one
	sidecar *networkingv1.Sidecar
	visible []*registry.Service          // sorted by Hostname, then Namespace
	meshVS  []*config.Resource           // VirtualServices bound to "mesh" and exported to ns
	byHost  map[string]*registry.Service // service's answers, built on first use
	cache   *Cache                       // proxy-independent work (cache.go); nil: none
	out     *Resources
}

func newBuilder(s *snapshot.Snapshot, p Proxy, c *Cache) *builder {
	b := &builder{
		snap:  s,
		cache: c,
		reg:   cmp.Or(s.Registry, &registry.Registry{}),
		mesh:  s.Mesh,
		proxy: p,
		ns:    cmp.Or(p.Namespace, config.DefaultNamespace),
		addr:  p.Address,
		out: &Resources{
			Listeners: map[string]proto.Message{},
			Routes:    map[string]proto.Message{},
			Clusters:  map[string]proto.Message{},
			Endpoints: map[string]proto.Message{},
		},
	}
	b.mesh.DomainSuffix = cmp.Or(b.mesh.DomainSuffix, "cluster.local")
	if p.Name != "" {
		b.wl = b.reg.Workload(b.ns, p.Name)
	}
	if b.wl != nil {
		b.addr = cmp.Or(b.wl.Address, p.Address)
		b.labels = b.wl.Labels
	}
	if p.Type != Router {
		// Istio never applies Sidecar resources to gateways.
		b.sidecar = b.selectSidecar()
	}
	b.meshVS = b.virtualServicesFor(func(gws []string, _ string) bool {
		return len(gws) == 0 || slices.Contains(gws, "mesh")
	})
	b.visible = b.visibleServices()
	return b
}

// selectSidecar picks the Sidecar that applies to the proxy as Istio does:
// one in the workload's namespace whose selector matches its labels, else the
// namespace's selector-less one, else the root namespace's selector-less one.
func (b *builder) selectSidecar() *networkingv1.Sidecar {
	var nsDefault, rootDefault *networkingv1.Sidecar
	for _, r := range b.snap.Config.List(config.KindSidecar) {
		sc, ok := r.Spec.(*networkingv1.Sidecar)
		if !ok {
			continue
		}
		sel := sc.GetWorkloadSelector().GetLabels()
		switch {
		case r.Meta.Namespace == b.ns && len(sel) > 0:
			if b.wl != nil && registry.LabelsMatch(sel, b.labels) {
				return sc
			}
		case len(sel) > 0:
		case r.Meta.Namespace == b.ns && nsDefault == nil:
			nsDefault = sc
		case r.Meta.Namespace == b.mesh.RootNamespace && rootDefault == nil:
			rootDefault = sc
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	return rootDefault
}

// visibleServices are the services exported to the proxy's namespace and,
// when a Sidecar with egress listeners applies, named by the union of their
// hosts or routed to by a VirtualService those hosts select (Istio adds
// VirtualService destinations to the Sidecar's scope).
func (b *builder) visibleServices() []*registry.Service {
	eg := b.sidecar.GetEgress()
	deps := b.virtualServiceDependencies(eg)
	var out []*registry.Service
	for _, svc := range b.reg.Services {
		if !b.exportedTo(svc.ExportTo, svc.Namespace) {
			continue
		}
		if len(eg) > 0 && !deps[svc.Hostname] && !slices.ContainsFunc(eg, func(e *networkingv1.IstioEgressListener) bool {
			return b.egressSelects(e.GetHosts(), svc)
		}) {
			continue
		}
		out = append(out, svc)
	}
	return out
}

// virtualServiceDependencies returns the destination hosts of the mesh
// VirtualServices whose hosts the egress listeners select.
func (b *builder) virtualServiceDependencies(eg []*networkingv1.IstioEgressListener) map[string]bool {
	deps := map[string]bool{}
	if len(eg) == 0 {
		return deps
	}
	for _, r := range b.meshVS {
		vs := r.Spec.(*networkingv1.VirtualService)
		selected := slices.ContainsFunc(vs.GetHosts(), func(h string) bool {
			h = b.fqdn(h, r.Meta.Namespace)
			return slices.ContainsFunc(eg, func(e *networkingv1.IstioEgressListener) bool {
				return b.egressSelectsHost(e.GetHosts(), r.Meta.Namespace, h)
			})
		})
		if !selected {
			continue
		}
		for _, hr := range vs.GetHttp() {
			for _, d := range hr.GetRoute() {
				deps[b.fqdn(d.GetDestination().GetHost(), r.Meta.Namespace)] = true
			}
		}
		for _, tr := range vs.GetTcp() {
			for _, d := range tr.GetRoute() {
				deps[b.fqdn(d.GetDestination().GetHost(), r.Meta.Namespace)] = true
			}
		}
	}
	return deps
}

// exportedTo reports whether a resource of namespace owner with the given
// exportTo is visible in the proxy's namespace. Empty means everywhere
// (Istio's default meshConfig.defaultServiceExportTo).
func (b *builder) exportedTo(exportTo []string, owner string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if owner == b.ns {
				return true
			}
		case "~":
		default:
			if e == b.ns {
				return true
			}
		}
	}
	return false
}

// egressSelects reports whether Sidecar egress hosts ("ns/host") select svc.
func (b *builder) egressSelects(hosts []string, svc *registry.Service) bool {
	return b.egressSelectsHost(hosts, svc.Namespace, svc.Hostname)
}

// egressSelectsHost reports whether Sidecar egress hosts select host (which
// may be a wildcard) declared in namespace ns.
func (b *builder) egressSelectsHost(hosts []string, ns, host string) bool {
	for _, h := range hosts {
		want, pattern, found := strings.Cut(h, "/")
		if !found {
			want, pattern = "*", h
		}
		switch want {
		case "~":
			continue
		case ".":
			want = b.ns
		}
		if want != "*" && want != ns {
			continue
		}
		if registry.HostsIntersect(pattern, host) {
			return true
		}
	}
	return false
}

// fqdn resolves a short host the way Istio does: a name without a dot is in
// namespace ns; wildcards and dotted names are used as written.
func (b *builder) fqdn(host, ns string) string {
	if host == "" || strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + b.mesh.DomainSuffix
}

// virtualServicesFor returns the VirtualServices exported to the proxy's
// namespace whose gateways pass keep, sorted by namespace and name.
func (b *builder) virtualServicesFor(keep func(gateways []string, ns string) bool) []*config.Resource {
	var out []*config.Resource
	for _, r := range b.snap.Config.List(config.KindVirtualService) {
		vs, ok := r.Spec.(*networkingv1.VirtualService)
		if !ok || !b.exportedTo(vs.GetExportTo(), r.Meta.Namespace) || !keep(vs.GetGateways(), r.Meta.Namespace) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// virtualServiceFor picks the VirtualService among vss that governs host:
// one naming it exactly, else the one with the most specific wildcard; ties
// go to the first in (namespace, name) order.
func (b *builder) virtualServiceFor(vss []*config.Resource, host string) *config.Resource {
	var best *config.Resource
	bestLen := -1
	for _, r := range vss {
		vs := r.Spec.(*networkingv1.VirtualService)
		for _, h := range vs.GetHosts() {
			h = b.fqdn(h, r.Meta.Namespace)
			if !registry.HostMatches(h, host) {
				continue
			}
			n := len(h)
			if !strings.HasPrefix(h, "*") {
				n = 1 << 20 // exact beats any wildcard
			}
			if n > bestLen {
				best, bestLen = r, n
			}
		}
	}
	return best
}

// service returns the visible service with hostname host, preferring one in
// the proxy's namespace, or nil.
func (b *builder) service(host string) *registry.Service {
	if b.byHost == nil {
		// Routes look up a service per route: index once, not a scan each
		// time (issue 5: 1000 services made this quadratic).
		b.byHost = make(map[string]*registry.Service, len(b.visible))
		for _, s := range b.visible {
			if cur, ok := b.byHost[s.Hostname]; !ok || (cur.Namespace != b.ns && s.Namespace == b.ns) {
				b.byHost[s.Hostname] = s
			}
		}
	}
	return b.byHost[host]
}

// servicesOnPort returns the visible services (in order) that serve port with
// an HTTP protocol, or a non-HTTP one when http is false, and pass keep.
func (b *builder) servicesOnPort(port uint32, http bool, keep func(*registry.Service) bool) []*registry.Service {
	var out []*registry.Service
	for _, s := range b.visible {
		p, ok := s.Port(port)
		if !ok || p.Protocol.IsHTTP() != http || (keep != nil && !keep(s)) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// httpPorts lists the distinct port numbers on which visible services speak
// HTTP, ascending.
func (b *builder) httpPorts() []uint32 {
	var ports []uint32
	for _, s := range b.visible {
		for _, p := range s.Ports {
			if p.Protocol.IsHTTP() {
				ports = append(ports, p.Number)
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}
