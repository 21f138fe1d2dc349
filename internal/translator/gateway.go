package translator

import (
	"cmp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// gatewayServer is one HTTP server of a selected Gateway.
type gatewayServer struct {
	gw     string // "ns/name"
	gwNS   string
	server *networkingv1.Server
}

// buildGateway emits a router's listeners: one ADDR_PORT listener per HTTP
// server port of the Gateways selecting the workload, each with route table
// http.PORT holding a virtual host per server host and bound VirtualService.
//
// TODO(next issue): HTTPS and TLS servers, TCP servers.
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
			p := s.GetPort()
			if p.GetNumber() == 0 || !registry.ParseProtocol(p.GetProtocol(), p.GetName()).IsHTTP() {
				continue
			}
			byPort[p.GetNumber()] = append(byPort[p.GetNumber()], gatewayServer{gw: r.Meta.Namespace + "/" + r.Meta.Name, gwNS: r.Meta.Namespace, server: s})
		}
	}
	ports := slices.Sorted(func(yield func(uint32) bool) {
		for p := range byPort {
			if !yield(p) {
				return
			}
		}
	})
	for _, port := range ports {
		servers := byPort[port]
		addr := cmp.Or(servers[0].server.GetBind(), b.addr)
		if addr == "" {
			continue
		}
		routeName := "http." + portString(port)
		name := listenerName(addr, port)
		b.out.Listeners[name] = httpListener(name, addr, port, corev3.TrafficDirection_OUTBOUND, routeName, false)
		b.out.Routes[routeName] = b.gatewayRouteConfig(routeName, port, servers)
	}
}

func (b *builder) gatewayRouteConfig(name string, port uint32, servers []gatewayServer) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	seen := domainSet{}
	for _, gs := range servers {
		bound := b.virtualServicesFor(func(gws []string, vsNS string) bool {
			return slices.ContainsFunc(gws, func(g string) bool { return gatewayKey(g, vsNS) == gs.gw })
		})
		for _, sh := range gs.server.GetHosts() {
			allowedNS, serverHost, found := strings.Cut(sh, "/")
			if !found {
				allowedNS, serverHost = "*", sh
			}
			if allowedNS == "." {
				allowedNS = gs.gwNS
			}
			for _, r := range bound {
				if allowedNS != "*" && allowedNS != r.Meta.Namespace {
					continue
				}
				vs := r.Spec.(*networkingv1.VirtualService)
				for _, h := range vs.GetHosts() {
					h = b.fqdn(h, r.Meta.Namespace)
					if !hostsIntersect(h, serverHost) {
						continue
					}
					// The narrower of the two names is what the vhost serves.
					domain := serverHost
					if hostMatches(serverHost, h) {
						domain = h
					}
					domains := seen.claim(hostPort(domain, port))
					if len(domains) == 0 {
						continue // TODO(next issue): merge VirtualServices sharing a host.
					}
					rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
						Name:    domain + ":" + portString(port),
						Domains: domains,
						Routes:  b.vsRoutes(r, port, gs.gw),
					})
				}
			}
		}
	}
	return rc
}
