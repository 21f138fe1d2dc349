package gatewayapi

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// groupKey names one generated VirtualService: the routes of one host
// bound to one Istio Gateway, or (gateway "mesh") to sidecars.
type groupKey struct {
	ns      string // namespace of the VirtualService
	gateway string // "ns/name" of the Istio Gateway, or "mesh"
	host    string
	local   bool // mesh consumer route: exported to its own namespace only
}

func compareGroupKeys(a, b groupKey) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.gateway, b.gateway), cmp.Compare(a.host, b.host),
		cmp.Compare(boolInt(a.local), boolInt(b.local)))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// group collects the routes of one VirtualService.
type group struct {
	entries []entry
	sources []string
	origin  config.Origin
}

// entry is one Gateway API match (of one rule) as Istio routes, with its
// precedence.
type entry struct {
	rank   rank
	order  int // position in creation order: the tie-breaker
	routes []*networkingv1.HTTPRoute
}

// rank orders matches as the Gateway API requires (and Istio's
// sortHTTPRoutes implements): exact path, then longest prefix, then regex;
// then a method match; then more header matches; then more query matches.
type rank struct {
	path    int // 3 exact, 2 prefix, 1 regex, 0 none
	pathLen int
	method  bool
	headers int
	query   int
}

func compareRanks(a, b rank) int { // higher first
	return cmp.Or(cmp.Compare(b.path, a.path), cmp.Compare(b.pathLen, a.pathLen),
		cmp.Compare(boolInt(b.method), boolInt(a.method)), cmp.Compare(b.headers, a.headers), cmp.Compare(b.query, a.query))
}

func (g *group) virtualService(k groupKey) *config.Resource {
	slices.SortStableFunc(g.entries, func(a, b entry) int {
		return cmp.Or(compareRanks(a.rank, b.rank), cmp.Compare(a.order, b.order))
	})
	vs := &networkingv1.VirtualService{Hosts: []string{k.host}, Gateways: []string{k.gateway}}
	if k.local {
		vs.ExportTo = []string{"."}
	}
	for _, e := range g.entries {
		vs.Http = append(vs.Http, e.routes...)
	}
	where := strings.TrimPrefix(k.gateway, k.ns+"/")
	if k.gateway == "mesh" {
		where = "mesh"
	}
	name := fmt.Sprintf("%s-%s-%s", where, strings.ReplaceAll(k.host, "*", "wildcard"), generatedSuffix)
	return &config.Resource{
		Kind:   config.KindVirtualService,
		Meta:   config.Meta{Name: name, Namespace: k.ns, Annotations: map[string]string{generatedFrom: strings.Join(g.sources, ",")}},
		Spec:   vs,
		Origin: g.origin,
	}
}

// attachment is where one route's rules go.
type attachment struct {
	key  groupKey
	port uint32 // a mesh parentRef's port: every match gets it
}

// route is an HTTPRoute or GRPCRoute reduced to what attachment needs.
type route struct {
	r         *config.Resource
	kind      string // "HTTPRoute" or "GRPCRoute"
	parents   []gwv1.ParentReference
	hostnames []gwv1.Hostname
}

// attach resolves a route's parentRefs.
func (c *converter) attach(rt route) []attachment {
	var out []attachment
	ns := rt.r.Meta.Namespace
	for i, ref := range rt.parents {
		path := fmt.Sprintf("spec.parentRefs[%d]", i)
		group, kind := cmp.Or(gwDeref(ref.Group), config.GatewayAPIGroup), cmp.Or(gwDeref(ref.Kind), "Gateway")
		if ref.Group != nil && *ref.Group == "" {
			group = ""
		}
		refNS := cmp.Or(gwDeref(ref.Namespace), ns)
		switch {
		case group == config.GatewayAPIGroup && kind == "Gateway":
			out = append(out, c.attachGateway(rt, path, ref, refNS)...)
		case group == "" && kind == "Service":
			host := fmt.Sprintf("%s.%s.svc.%s", ref.Name, refNS, c.opts.suffix())
			if !c.knownHost(host) {
				c.problem(rt.r, path, "no ServiceEntry defines host %s (route not attached)", host)
				continue
			}
			out = append(out, c.meshAttachment(ns, refNS, host, ref.Port))
		case group == "networking.istio.io" && kind == "ServiceEntry":
			se := c.set.Get(config.Key{Kind: config.KindServiceEntry, Namespace: refNS, Name: string(ref.Name)})
			if se == nil {
				c.problem(rt.r, path, "ServiceEntry %s/%s not found (route not attached)", refNS, ref.Name)
				continue
			}
			for _, h := range se.Spec.(*networkingv1.ServiceEntry).GetHosts() {
				out = append(out, c.meshAttachment(ns, refNS, h, ref.Port))
			}
		default:
			c.problem(rt.r, path, "parent %s %s is not supported (want a Gateway, a Service or a networking.istio.io ServiceEntry)", kind, group)
		}
	}
	return out
}

// meshAttachment is GAMMA: a route in the Service's namespace is a producer
// route that every client sees; a route elsewhere is a consumer route for
// clients in its own namespace.
func (c *converter) meshAttachment(routeNS, svcNS, host string, port *gwv1.PortNumber) attachment {
	a := attachment{key: groupKey{ns: routeNS, gateway: "mesh", host: host, local: routeNS != svcNS}}
	if port != nil {
		a.port = uint32(*port)
	}
	return a
}

func (c *converter) knownHost(host string) bool {
	if c.hosts == nil {
		c.hosts = map[string]bool{}
		for _, se := range c.set.List(config.KindServiceEntry) {
			for _, h := range se.Spec.(*networkingv1.ServiceEntry).GetHosts() {
				c.hosts[h] = true
			}
		}
	}
	return c.hosts[host]
}

func (c *converter) attachGateway(rt route, path string, ref gwv1.ParentReference, refNS string) []attachment {
	gwKey := config.Key{Kind: config.KindKubernetesGateway, Namespace: refNS, Name: string(ref.Name)}
	gw := c.set.Get(gwKey)
	if gw == nil {
		c.problem(rt.r, path, "Gateway %s/%s not found (route not attached)", refNS, ref.Name)
		return nil
	}
	listeners := c.byGateway[refNS+"/"+string(ref.Name)]
	if len(listeners) == 0 && !c.served(string(gw.GatewayAPI.Gateway.Spec.GatewayClassName)) {
		return nil // another controller's Gateway
	}
	var out []attachment
	var why []string
	for _, l := range listeners {
		if ref.SectionName != nil && *ref.SectionName != l.spec.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != l.spec.Port {
			continue
		}
		if msg := c.allowed(rt, l); msg != "" {
			why = append(why, fmt.Sprintf("listener %s: %s", l.spec.Name, msg))
			continue
		}
		hosts := intersectHosts(rt.hostnames, gwDeref(l.spec.Hostname))
		if len(hosts) == 0 {
			why = append(why, fmt.Sprintf("listener %s: no hostname in common with %s", l.spec.Name, gwDeref(l.spec.Hostname)))
			continue
		}
		for _, h := range hosts {
			out = append(out, attachment{key: groupKey{ns: refNS, gateway: l.istioName, host: h}})
		}
	}
	if len(out) == 0 {
		msg := "no listener of Gateway " + refNS + "/" + string(ref.Name) + " accepts the route"
		if ref.SectionName != nil {
			msg += " (sectionName " + string(*ref.SectionName) + ")"
		}
		if len(why) > 0 {
			msg += ": " + strings.Join(why, "; ")
		}
		c.problem(rt.r, path, "%s", msg)
	}
	return out
}

// allowed checks a listener's allowedRoutes; "" when the route may attach.
func (c *converter) allowed(rt route, l *listener) string {
	from := gwv1.NamespacesFromSame
	var kinds []gwv1.RouteGroupKind
	if ar := l.spec.AllowedRoutes; ar != nil {
		if ar.Namespaces != nil && ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		kinds = ar.Kinds
	}
	switch from {
	case gwv1.NamespacesFromAll:
	case gwv1.NamespacesFromSame:
		if rt.r.Meta.Namespace != l.gw.Meta.Namespace {
			return "allowedRoutes admits only routes in namespace " + l.gw.Meta.Namespace
		}
	case gwv1.NamespacesFromNone:
		return "allowedRoutes admits no routes"
	default:
		return "allowedRoutes.namespaces.from Selector is not supported (there are no Namespace objects in local mode)"
	}
	if len(kinds) > 0 && !slices.ContainsFunc(kinds, func(k gwv1.RouteGroupKind) bool {
		return string(k.Kind) == rt.kind && (k.Group == nil || string(*k.Group) == config.GatewayAPIGroup)
	}) {
		return "allowedRoutes.kinds does not admit " + rt.kind
	}
	return ""
}

// intersectHosts is the Gateway API's hostname matching between a route's
// hostnames and a listener's hostname ("" matches anything): the narrower
// name of each intersecting pair, or the listener's hostname (or "*") when
// the route names none.
func intersectHosts(route []gwv1.Hostname, listener string) []string {
	if len(route) == 0 {
		return []string{cmp.Or(listener, "*")}
	}
	var out []string
	for _, h := range route {
		rh := string(h)
		switch {
		case listener == "" || listener == rh || hostCovers(listener, rh):
			out = append(out, rh)
		case hostCovers(rh, listener):
			out = append(out, listener)
		default:
			continue
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostCovers reports whether wildcard pattern w ("*.example.com") matches
// host h (one or more labels in place of "*", per the Gateway API).
func hostCovers(w, h string) bool {
	if !strings.HasPrefix(w, "*.") {
		return false
	}
	suffix := w[1:] // ".example.com"
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix) && h != w
}

// add puts a route's entries into the groups of its attachments.
func (c *converter) add(rt route, atts []attachment, entries []entry) {
	for _, a := range atts {
		g := c.groups[a.key]
		if g == nil {
			g = &group{origin: rt.r.Origin}
			c.groups[a.key] = g
		}
		src := rt.r.Key().String()
		if !slices.Contains(g.sources, src) {
			g.sources = append(g.sources, src)
		}
		for _, e := range entries {
			if a.port != 0 {
				e.routes = withPort(e.routes, a.port)
			}
			g.entries = append(g.entries, e)
		}
	}
}

// withPort clones routes with every match restricted to port.
func withPort(routes []*networkingv1.HTTPRoute, port uint32) []*networkingv1.HTTPRoute {
	out := make([]*networkingv1.HTTPRoute, len(routes))
	for i, r := range routes {
		r = proto.Clone(r).(*networkingv1.HTTPRoute)
		if len(r.Match) == 0 {
			r.Match = []*networkingv1.HTTPMatchRequest{{}}
		}
		for _, m := range r.Match {
			m.Port = port
		}
		out[i] = r
	}
	return out
}
