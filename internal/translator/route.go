package translator

import (
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Istio's default HTTP retry policy (pilot's DefaultRouteRetryPolicy).
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:              defaultRetryOn,
		NumRetries:           wrapperspb.UInt32(2),
		RetriableStatusCodes: []uint32{503},
	}
}

// defaultRoute sends everything to outbound|PORT||HOST with Istio's default
// retries and no timeout.
func defaultRoute(port uint32, host string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName(port, "", host)},
			Timeout:          duration(0),
			RetryPolicy:      defaultRetryPolicy(),
		}},
	}
}

// serviceRoutes are the routes of svc's virtual host on port: those of the
// VirtualService among vss governing the host, else the default route.
func (b *builder) serviceRoutes(svc *registry.Service, port uint32, vss []*config.Resource) []*routev3.Route {
	if vs := b.virtualServiceFor(vss, svc.Hostname); vs != nil {
		return b.withHashPolicies(b.vsRoutes(vs, port, "mesh"))
	}
	// The default route reads nothing of the proxy but the DestinationRule
	// that gives it a hash policy (clusterHashPolicy's), so proxies share it.
	var hs *registry.Service
	if b.cache != nil {
		hs = b.anyService(svc.Hostname)
	}
	if hs == nil {
		return b.withHashPolicies([]*routev3.Route{defaultRoute(port, svc.Hostname)})
	}
	return memo(b.cache, b.snap, cacheRoutes, routeKey{host: svc.Hostname, port: port, dr: b.destinationRule(hs)}, func() []*routev3.Route {
		return b.withHashPolicies([]*routev3.Route{defaultRoute(port, svc.Hostname)})
	})
}

// domainSet keeps virtual host domains unique within one
// RouteConfiguration, as Envoy requires; the first virtual host to claim a
// domain keeps it.
type domainSet map[string]bool

func (d domainSet) claim(in []string) []string {
	var out []string
	for _, s := range in {
		k := strings.ToLower(s)
		if d[k] {
			continue
		}
		d[k] = true
		out = append(out, s)
	}
	return out
}

// hostAliases are the names a client may use for svc from the proxy's
// namespace: the host; for NAME.NS.svc.SUFFIX also NAME (same namespace
// only), NAME.NS and NAME.NS.svc; and the service's virtual IPs.
func (b *builder) hostAliases(svc *registry.Service) []string {
	names := []string{svc.Hostname}
	if rest, ok := strings.CutSuffix(svc.Hostname, ".svc."+b.mesh.DomainSuffix); ok {
		if name, ns, ok := strings.Cut(rest, "."); ok && name != "" && ns != "" && !strings.Contains(ns, ".") {
			if ns == b.ns {
				names = append(names, name)
			}
			names = append(names, name+"."+ns, name+"."+ns+".svc")
		}
	}
	for _, a := range svc.Addresses {
		if _, err := netip.ParseAddr(a); err == nil {
			names = append(names, a)
		}
	}
	return names
}

// domains lists each alias bare (when bare) and with ":port".
func (b *builder) domains(svc *registry.Service, port uint32, bare bool) []string {
	var out []string
	for _, n := range b.hostAliases(svc) {
		if bare {
			out = append(out, n)
		}
		out = append(out, n+":"+portString(port))
	}
	return out
}

// outboundRouteConfig is the route table of one outbound HTTP port: a
// virtual host per service in svcs.
func (b *builder) outboundRouteConfig(name string, port uint32, svcs []*registry.Service) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	seen := domainSet{}
	for _, svc := range svcs {
		domains := seen.claim(b.domains(svc, port, true))
		if len(domains) == 0 {
			continue
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    svc.Hostname + ":" + portString(port),
			Domains: domains,
			Routes:  b.serviceRoutes(svc, port, b.meshVS),
		})
	}
	b.addCatchAll(rc, seen) // external.go: allow_any or block_all
	return rc
}

// httpProxyRouteConfig serves the http_proxy listener: every visible HTTP
// service on every port. Domains carry the port, since Envoy matches the Host
// header including it; bare names go to port 80 when the service has it, or
// to its only HTTP port.
func (b *builder) httpProxyRouteConfig() *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: httpProxyName}
	seen := domainSet{}
	for _, svc := range b.visible {
		var httpPorts []uint32
		has80 := false
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() {
				httpPorts = append(httpPorts, p.Number)
				has80 = has80 || p.Number == 80
			}
		}
		for _, port := range httpPorts {
			bare := port == 80 || (!has80 && len(httpPorts) == 1)
			domains := seen.claim(b.domains(svc, port, bare))
			if len(domains) == 0 {
				continue
			}
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    svc.Hostname + ":" + portString(port),
				Domains: domains,
				Routes:  b.serviceRoutes(svc, port, b.meshVS),
			})
		}
	}
	b.addCatchAll(rc, seen)
	return rc
}

// inboundRouteConfig is inbound|PORT||: everything to the app.
func inboundRouteConfig(port uint32) *routev3.RouteConfiguration {
	name := inboundName(port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound|http|" + portString(port),
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
					Timeout:          duration(0),
				}},
			}},
		}},
	}
}

// headerOptions turns Istio's set/add maps into Envoy header options,
// sorted by name: set overwrites, add appends.
func headerOptions(set, add map[string]string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}
