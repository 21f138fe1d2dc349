package analyze

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// destination is one route destination of a VirtualService with its path.
type destination struct {
	field  string // spec.http[0].route[1].destination
	host   string
	subset string
}

func destinations(vs *networkingv1.VirtualService) []destination {
	var out []destination
	for i, hr := range vs.GetHttp() {
		for j, d := range hr.GetRoute() {
			out = append(out, destination{fmt.Sprintf("spec.http[%d].route[%d].destination", i, j), d.GetDestination().GetHost(), d.GetDestination().GetSubset()})
		}
		if m := hr.GetMirror(); m != nil {
			out = append(out, destination{fmt.Sprintf("spec.http[%d].mirror", i), m.GetHost(), m.GetSubset()})
		}
	}
	for i, tr := range vs.GetTcp() {
		for j, d := range tr.GetRoute() {
			out = append(out, destination{fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.GetDestination().GetHost(), d.GetDestination().GetSubset()})
		}
	}
	for i, tr := range vs.GetTls() {
		for j, d := range tr.GetRoute() {
			out = append(out, destination{fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.GetDestination().GetHost(), d.GetDestination().GetSubset()})
		}
	}
	return out
}

// virtualServices checks every VirtualService: destinations (unknown host,
// subset without a DestinationRule), weights, unreachable rules, and hosts
// claimed by two VirtualServices on the same gateway.
func (a *analyzer) virtualServices() {
	type claim struct {
		gateway, host string
	}
	claimed := map[claim]*config.Resource{}
	for _, r := range a.set.List(config.KindVirtualService) {
		vs, ok := r.Spec.(*networkingv1.VirtualService)
		if !ok {
			continue
		}
		for _, d := range destinations(vs) {
			a.checkDestination(r, d)
		}
		for i, hr := range vs.GetHttp() {
			var ws []int32
			for _, d := range hr.GetRoute() {
				ws = append(ws, d.GetWeight())
			}
			a.checkWeights(r, fmt.Sprintf("spec.http[%d]", i), ws)
		}
		for i, tr := range vs.GetTcp() {
			var ws []int32
			for _, d := range tr.GetRoute() {
				ws = append(ws, d.GetWeight())
			}
			a.checkWeights(r, fmt.Sprintf("spec.tcp[%d]", i), ws)
		}
		a.checkUnreachable(r, vs)
		if len(vs.GetHttp()) == 0 && len(vs.GetTcp()) == 0 && len(vs.GetTls()) == 0 {
			continue // a delegate (or empty) VirtualService claims nothing
		}
		gws := vs.GetGateways()
		if len(gws) == 0 {
			gws = []string{"mesh"}
		}
		for _, gw := range gws {
			gw = gatewayKey(gw, r.Meta.Namespace)
			for i, h := range vs.GetHosts() {
				c := claim{gw, strings.ToLower(a.fqdn(h, r.Meta.Namespace))}
				if first, dup := claimed[c]; dup && first != r {
					a.add(r, CodeConflictingVS, Error, fmt.Sprintf("spec.hosts[%d]", i),
						"merge the two into one VirtualService, or delegate from one to the other",
						"host %q on gateway %q is also routed by %s; only one of them takes effect", c.host, gw, first.Key())
					continue
				}
				claimed[c] = r
			}
		}
	}
}

// gatewayKey resolves a VirtualService gateway reference: "mesh" and
// "ns/name" as written, "name" in the VirtualService's namespace.
func gatewayKey(ref, ns string) string {
	if ref == "mesh" || strings.Contains(ref, "/") {
		return ref
	}
	return ns + "/" + ref
}

func (a *analyzer) checkDestination(r *config.Resource, d destination) {
	if d.host == "" {
		return
	}
	host := a.fqdn(d.host, r.Meta.Namespace)
	if len(a.services(host)) == 0 {
		a.add(r, CodeUnknownHost, Error, d.field+".host",
			"declare the host in a ServiceEntry, or correct the name",
			"host %q is not in the service registry; requests routed here fail", host)
		return
	}
	if d.subset == "" {
		return
	}
	rules := a.rulesFor(host)
	if len(rules) == 0 {
		a.add(r, CodeSubsetNoRule, Error, d.field+".subset",
			fmt.Sprintf("add a DestinationRule for %s with a subset named %q", host, d.subset),
			"subset %q of %q has no DestinationRule; requests routed here get 503 (NR)", d.subset, host)
		return
	}
	for _, dr := range rules {
		if slices.ContainsFunc(dr.GetSubsets(), func(s *networkingv1.Subset) bool { return s.GetName() == d.subset }) {
			return
		}
	}
	a.add(r, CodeSubsetNoRule, Error, d.field+".subset",
		fmt.Sprintf("add subset %q to the DestinationRule for %s", d.subset, host),
		"no DestinationRule for %q defines subset %q; requests routed here get 503 (NR)", host, d.subset)
}

// rulesFor returns the DestinationRules whose host covers host.
func (a *analyzer) rulesFor(host string) []*networkingv1.DestinationRule {
	var out []*networkingv1.DestinationRule
	for _, r := range a.set.List(config.KindDestinationRule) {
		dr, ok := r.Spec.(*networkingv1.DestinationRule)
		if ok && registry.HostMatches(a.fqdn(dr.GetHost(), r.Meta.Namespace), host) {
			out = append(out, dr)
		}
	}
	return out
}

// checkWeights reports a route whose weights, when any is set, do not add
// up to 100 (Istio rejects such routes; a single destination may leave its
// weight unset).
func (a *analyzer) checkWeights(r *config.Resource, field string, ws []int32) {
	var sum int32
	set := false
	for _, w := range ws {
		sum += w
		set = set || w != 0
	}
	if !set || sum == 100 {
		return
	}
	a.add(r, CodeWeightSum, Error, field+".route",
		"make the weights add up to 100",
		"route weights add up to %d, not 100", sum)
}

// checkUnreachable reports http rules after one that matches every request.
func (a *analyzer) checkUnreachable(r *config.Resource, vs *networkingv1.VirtualService) {
	for i, hr := range vs.GetHttp() {
		if !catchesAll(hr) {
			continue
		}
		for j := i + 1; j < len(vs.GetHttp()); j++ {
			a.add(r, CodeUnreachableRule, Warning, fmt.Sprintf("spec.http[%d]", j),
				fmt.Sprintf("move spec.http[%d] above spec.http[%d], or narrow spec.http[%d]'s match", j, i, i),
				"rule can never match: spec.http[%d] already matches every request", i)
		}
		return
	}
}

// catchesAll reports whether an http rule matches every request: no match
// at all, or a match whose only condition is a uri prefix "/" (or a
// regex ".*").
func catchesAll(hr *networkingv1.HTTPRoute) bool {
	if len(hr.GetMatch()) == 0 {
		return true
	}
	for _, m := range hr.GetMatch() {
		if matchesEverything(m) {
			return true
		}
	}
	return false
}

func matchesEverything(m *networkingv1.HTTPMatchRequest) bool {
	if m == nil {
		return true
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case nil:
	case *networkingv1.StringMatch_Prefix:
		if u.Prefix != "/" && u.Prefix != "" {
			return false
		}
	case *networkingv1.StringMatch_Regex:
		if u.Regex != ".*" && u.Regex != "" {
			return false
		}
	default:
		return false
	}
	return m.GetScheme() == nil && m.GetMethod() == nil && m.GetAuthority() == nil &&
		len(m.GetHeaders()) == 0 && len(m.GetWithoutHeaders()) == 0 && len(m.GetQueryParams()) == 0 &&
		m.GetPort() == 0 && len(m.GetSourceLabels()) == 0 && len(m.GetGateways()) == 0 &&
		m.GetSourceNamespace() == "" && m.GetStatPrefix() == ""
}

// destinationRules reports subsets whose labels select none of the
// service's endpoints (only for services that have endpoints).
func (a *analyzer) destinationRules() {
	for _, r := range a.set.List(config.KindDestinationRule) {
		dr, ok := r.Spec.(*networkingv1.DestinationRule)
		if !ok || strings.HasPrefix(dr.GetHost(), "*") {
			continue
		}
		host := a.fqdn(dr.GetHost(), r.Meta.Namespace)
		var eps []*registry.Endpoint
		for _, s := range a.services(host) {
			if s.Hostname == host {
				eps = append(eps, a.reg.EndpointsOf(s)...)
			}
		}
		if len(eps) == 0 {
			continue
		}
		for i, ss := range dr.GetSubsets() {
			if slices.ContainsFunc(eps, func(e *registry.Endpoint) bool { return registry.LabelsMatch(ss.GetLabels(), e.Labels) }) {
				continue
			}
			a.add(r, CodeSubsetNoWorkload, Warning, fmt.Sprintf("spec.subsets[%d].labels", i),
				"correct the labels, or label a WorkloadEntry of the service with them",
				"subset %q selects none of the %d endpoints of %q; traffic to it gets 503 (UH)", ss.GetName(), len(eps), host)
		}
	}
}

// gateways reports Gateway server hosts no VirtualService bound to the
// gateway routes (HTTP servers that only redirect to HTTPS are skipped).
func (a *analyzer) gateways() {
	vss := a.set.List(config.KindVirtualService)
	for _, r := range a.set.List(config.KindGateway) {
		gw, ok := r.Spec.(*networkingv1.Gateway)
		if !ok {
			continue
		}
		key := r.Meta.Namespace + "/" + r.Meta.Name
		for i, srv := range gw.GetServers() {
			if srv.GetTls().GetHttpsRedirect() {
				continue
			}
			for j, h := range srv.GetHosts() {
				ns, host, found := strings.Cut(h, "/")
				if !found {
					ns, host = "*", h
				}
				if ns == "." {
					ns = r.Meta.Namespace
				}
				if a.gatewayHostRouted(vss, key, ns, host) {
					continue
				}
				a.add(r, CodeGatewayNoRoute, Warning, fmt.Sprintf("spec.servers[%d].hosts[%d]", i, j),
					fmt.Sprintf("add a VirtualService with gateways: [%s] whose hosts include %q", key, host),
					"no VirtualService bound to this gateway routes host %q; requests for it get 404 (NR)", host)
			}
		}
	}
}

func (a *analyzer) gatewayHostRouted(vss []*config.Resource, gwKey, ns, host string) bool {
	for _, r := range vss {
		vs, ok := r.Spec.(*networkingv1.VirtualService)
		if !ok || (ns != "*" && r.Meta.Namespace != ns) {
			continue
		}
		if !slices.ContainsFunc(vs.GetGateways(), func(g string) bool { return gatewayKey(g, r.Meta.Namespace) == gwKey }) {
			continue
		}
		for _, h := range vs.GetHosts() {
			h = a.fqdn(h, r.Meta.Namespace)
			if registry.HostMatches(h, host) || registry.HostMatches(host, h) {
				return true
			}
		}
	}
	return false
}
