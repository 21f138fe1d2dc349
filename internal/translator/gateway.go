package translator

import (
	"cmp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// gatewayServer is one server of a selected Gateway.
type gatewayServer struct {
	gw     string // "ns/name"
	gwNS   string
	gwName string
	server *networkingv1.Server
}

// kind classifies a server as Istio does: by protocol, and for TLS by mode.
type serverKind uint8

const (
	serverHTTP        serverKind = iota // HTTP, HTTP2, GRPC: plain text routed by http.PORT
	serverHTTPS                         // HTTPS terminated here (SIMPLE, MUTUAL), routed by its own table
	serverPassthrough                   // HTTPS or TLS with mode PASSTHROUGH: SNI → tls routes
	serverTLS                           // TLS terminated here: tcp routes
	serverTCP                           // TCP (and anything else): tcp routes
)

func (gs gatewayServer) kind() serverKind {
	p := gs.server.GetPort()
	proto := registry.ParseProtocol(p.GetProtocol(), p.GetName())
	mode := gs.server.GetTls().GetMode()
	passthrough := mode == networkingv1.ServerTLSSettings_PASSTHROUGH || mode == networkingv1.ServerTLSSettings_AUTO_PASSTHROUGH
	switch {
	case proto.IsHTTP():
		return serverHTTP
	case proto == registry.ProtocolHTTPS && passthrough:
		return serverPassthrough
	case proto == registry.ProtocolHTTPS:
		return serverHTTPS
	case proto == registry.ProtocolTLS && passthrough:
		return serverPassthrough
	case proto == registry.ProtocolTLS:
		return serverTLS
	default:
		return serverTCP
	}
}

// hosts returns the server's hosts split into the namespace allowed to bind
// and the host pattern ("." resolved to the Gateway's namespace).
func (gs gatewayServer) hosts() (ns, host []string) {
	for _, sh := range gs.server.GetHosts() {
		n, h, found := strings.Cut(sh, "/")
		if !found {
			n, h = "*", sh
		}
		if n == "." {
			n = gs.gwNS
		}
		ns, host = append(ns, n), append(host, h)
	}
	return ns, host
}

// buildGateway emits a router's listeners, one ADDR_PORT per server port of
// the Gateways selecting the workload (Istio merges servers by port):
//
//   - HTTP servers share route table http.PORT, a virtual host per server
//     host and bound VirtualService; an httpsRedirect server's virtual
//     hosts carry require_tls ALL;
//   - each HTTPS server gets a filter chain matching its hosts as SNI that
//     terminates TLS (gateway_tls.go) and routes by its own table
//     https.PORT.PORTNAME.GATEWAY.NAMESPACE;
//   - TLS PASSTHROUGH servers get a chain per tls route match of the bound
//     VirtualServices (SNI within the server hosts) into tcp_proxy;
//   - terminated TLS and TCP servers route by the tcp routes.
//
// The listener reads SNI with tls_inspector when any chain needs it.
func (b *builder) buildGateway() {
	if b.wl == nil {
		return
	}
	byPort := map[uint32][]gatewayServer{}
	for _, r := range b.snap.Config.List(config.KindGateway) {
		gw, ok := r.Spec.(*networkingv1.Gateway)
		if !ok || !registry.LabelsMatch(gw.GetSelector(), b.labels) {
			continue
		}
		for _, s := range gw.GetServers() {
			if n := s.GetPort().GetNumber(); n != 0 {
				byPort[n] = append(byPort[n], gatewayServer{gw: r.Meta.Namespace + "/" + r.Meta.Name, gwNS: r.Meta.Namespace, gwName: r.Meta.Name, server: s})
			}
		}
	}
	for _, port := range slices.Sorted(mapsKeys(byPort)) {
		servers := byPort[port]
		addr := cmp.Or(servers[0].server.GetBind(), b.addr)
		if addr == "" {
			continue
		}
		name := listenerName(addr, port)
		cs := &chainSet{}
		var plainHTTP []gatewayServer
		for _, gs := range servers {
			switch gs.kind() {
			case serverHTTP:
				plainHTTP = append(plainHTTP, gs)
			case serverHTTPS:
				b.gatewayHTTPSChain(cs, name, port, gs)
			case serverPassthrough:
				_, hosts := gs.hosts()
				for _, r := range b.gatewayVirtualServices(gs) {
					b.tlsRouteChains(cs, r, port, gs.gw, name, hosts)
				}
			case serverTLS, serverTCP:
				b.gatewayTCPChain(cs, name, port, gs)
			}
		}
		if len(plainHTTP) > 0 {
			routeName := "http." + portString(port)
			b.out.Routes[routeName] = b.gatewayRouteConfig(routeName, port, plainHTTP, false)
			cs.add(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{b.gatewayHCM(name, routeName, plainHTTP)}})
		}
		if len(cs.chains) == 0 {
			continue
		}
		l := cs.listener(name, addr, port, corev3.TrafficDirection_OUTBOUND)
		if len(l.GetListenerFilters()) == 0 && slices.ContainsFunc(cs.chains, func(c *listenerv3.FilterChain) bool { return c.GetTransportSocket() != nil }) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{sniInspector()}
		}
		b.out.Listeners[name] = l
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// gatewayHCM is the http_connection_manager of a gateway chain: route table
// routeName and, ahead of the router, the fault and CORS filters the bound
// VirtualServices use.
func (b *builder) gatewayHCM(statPrefix, routeName string, servers []gatewayServer) *listenerv3.Filter {
	var vss []*config.Resource
	for _, gs := range servers {
		vss = append(vss, b.gatewayVirtualServices(gs)...)
	}
	h := hcm(statPrefix, routeName, false)
	h.HttpFilters = append(b.routeFiltersUsed(vss).httpFilters(), h.HttpFilters...)
	return &listenerv3.Filter{Name: nameHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(h)}}
}

// serverSNI is a server's hosts as filter_chain_match server_names; nil
// when a host is "*" (any SNI, and connections without one).
func serverSNI(gs gatewayServer) []string {
	_, hosts := gs.hosts()
	if slices.Contains(hosts, "*") {
		return nil
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, strings.ToLower(h))
	}
	return out
}

// gatewayHTTPSChain terminates TLS for one HTTPS server and routes by its
// own table, Istio's https.PORT.PORTNAME.GATEWAY.NAMESPACE.
func (b *builder) gatewayHTTPSChain(cs *chainSet, name string, port uint32, gs gatewayServer) {
	routeName := "https." + portString(port) + "." + gs.server.GetPort().GetName() + "." + gs.gwName + "." + gs.gwNS
	b.out.Routes[routeName] = b.gatewayRouteConfig(routeName, port, []gatewayServer{gs}, true)
	cs.add(&listenerv3.FilterChain{
		FilterChainMatch: chainMatch(nil, serverSNI(gs)),
		TransportSocket:  downstreamTransportSocket(b.downstreamTLS(gs.server.GetTls(), true)),
		Filters:          []*listenerv3.Filter{b.gatewayHCM(name, routeName, []gatewayServer{gs})},
	})
}

// gatewayTCPChain serves a TCP server, or a TLS server terminated here, by
// the tcp routes of its bound VirtualServices (the first applicable rule).
func (b *builder) gatewayTCPChain(cs *chainSet, name string, port uint32, gs gatewayServer) {
	sub := &chainSet{}
	for _, r := range b.gatewayVirtualServices(gs) {
		b.tcpRouteChains(sub, r, port, gs.gw, name)
	}
	var ts *corev3.TransportSocket
	var sni []string
	if gs.kind() == serverTLS {
		ts = downstreamTransportSocket(b.downstreamTLS(gs.server.GetTls(), false))
		sni = serverSNI(gs)
	}
	for _, fc := range sub.chains {
		m := fc.GetFilterChainMatch()
		if sni != nil {
			if m == nil {
				m = &listenerv3.FilterChainMatch{}
			}
			m.ServerNames = sni
		}
		cs.add(&listenerv3.FilterChain{FilterChainMatch: m, TransportSocket: ts, Filters: fc.GetFilters()})
	}
}

// gatewayVirtualServices are the VirtualServices bound to gs's Gateway that
// the server's hosts admit (namespace and host).
func (b *builder) gatewayVirtualServices(gs gatewayServer) []*config.Resource {
	allowedNS, hosts := gs.hosts()
	bound := b.virtualServicesFor(func(gws []string, vsNS string) bool {
		return slices.ContainsFunc(gws, func(g string) bool { return gatewayKey(g, vsNS) == gs.gw })
	})
	return slices.DeleteFunc(bound, func(r *config.Resource) bool {
		vs := r.Spec.(*networkingv1.VirtualService)
		for i, sh := range hosts {
			if allowedNS[i] != "*" && allowedNS[i] != r.Meta.Namespace {
				continue
			}
			for _, h := range vs.GetHosts() {
				if registry.HostsIntersect(b.fqdn(h, r.Meta.Namespace), sh) {
					return false
				}
			}
		}
		return true
	})
}

// gatewayRouteConfig holds a virtual host per server host and bound
// VirtualService host on port. tls marks a table behind TLS termination
// (redirects then default to https).
func (b *builder) gatewayRouteConfig(name string, port uint32, servers []gatewayServer, tls bool) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	seen := domainSet{}
	for _, gs := range servers {
		bound := b.virtualServicesFor(func(gws []string, vsNS string) bool {
			return slices.ContainsFunc(gws, func(g string) bool { return gatewayKey(g, vsNS) == gs.gw })
		})
		allowedNS, hosts := gs.hosts()
		for i, serverHost := range hosts {
			for _, r := range bound {
				if allowedNS[i] != "*" && allowedNS[i] != r.Meta.Namespace {
					continue
				}
				vs := r.Spec.(*networkingv1.VirtualService)
				if len(vs.GetHttp()) == 0 {
					continue // tcp/tls-only: nothing for an HTTP server
				}
				for _, h := range vs.GetHosts() {
					h = b.fqdn(h, r.Meta.Namespace)
					if !registry.HostsIntersect(h, serverHost) {
						continue
					}
					// The narrower of the two names is what the vhost serves.
					domain := serverHost
					if registry.HostMatches(serverHost, h) {
						domain = h
					}
					domains := seen.claim(hostPort(domain, port))
					if len(domains) == 0 {
						continue // TODO(next issue): merge VirtualServices sharing a host.
					}
					vh := &routev3.VirtualHost{
						Name:    domain + ":" + portString(port),
						Domains: domains,
						// Consistent hashing at gateways as in sidecars (Istio
						// sets hash_policy on gateway routes too).
						Routes: b.withHashPolicies(b.vsRoutesIn(r, routeCtx{port: port, gw: gs.gw, tls: tls})),
					}
					if gs.server.GetTls().GetHttpsRedirect() {
						// Istio: plain-text requests answer 301 to https.
						vh.RequireTls = routev3.VirtualHost_ALL
					}
					rc.VirtualHosts = append(rc.VirtualHosts, vh)
				}
			}
			if gs.server.GetTls().GetHttpsRedirect() {
				// A redirecting server needs no route: Envoy answers
				// require_tls before routing.
				if domains := seen.claim(hostPort(serverHost, port)); len(domains) > 0 {
					rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
						Name:       serverHost + ":" + portString(port),
						Domains:    domains,
						RequireTls: routev3.VirtualHost_ALL,
					})
				}
			}
		}
	}
	return rc
}
