package translator

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// buildProxyless emits, for gRPC's xDS client, an API listener HOST:PORT
// per visible service port (the target of xds:///HOST:PORT) and a route
// table of the same name with one virtual host for exactly that authority.
func (b *builder) buildProxyless() {
	for _, svc := range b.visible {
		for _, p := range svc.Ports {
			name := svc.Hostname + ":" + portString(p.Number)
			if _, dup := b.out.Listeners[name]; dup {
				continue
			}
			b.out.Listeners[name] = &listenerv3.Listener{
				Name:        name,
				ApiListener: &listenerv3.ApiListener{ApiListener: typed(hcm(name, name, false))},
			}
			b.out.Routes[name] = &routev3.RouteConfiguration{
				Name: name,
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    name,
					Domains: []string{name},
					Routes:  b.serviceRoutes(svc, p.Number, b.meshVS),
				}},
			}
		}
	}
}
