package translator

import (
	"net"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// hcm is the http_connection_manager every HTTP listener runs: RDS over ADS,
// the router filter, WebSocket upgrades allowed.
func hcm(statPrefix, routeName string, absoluteURL bool) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    ads(),
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       nameRouter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&routerv3.Router{})},
		}},
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	if absoluteURL {
		h.HttpProtocolOptions = &corev3.Http1ProtocolOptions{AllowAbsoluteUrl: wrapperspb.Bool(true)}
	}
	return h
}

func httpListener(name, addr string, port uint32, dir corev3.TrafficDirection, routeName string, absoluteURL bool) *listenerv3.Listener {
	return socketListener(name, addr, port, dir, &listenerv3.Filter{
		Name:       nameHCM,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm(name, routeName, absoluteURL))},
	})
}

func tcpListener(name, addr string, port uint32, dir corev3.TrafficDirection, cluster string) *listenerv3.Listener {
	return socketListener(name, addr, port, dir, &listenerv3.Filter{
		Name: nameTCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpv3.TcpProxy{
			StatPrefix:       name,
			ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	})
}

func socketListener(name, addr string, port uint32, dir corev3.TrafficDirection, f *listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(addr, port),
		TrafficDirection: dir,
		FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{f}}},
	}
}

// buildSidecar emits a sidecar's listeners and route tables: inbound per
// Sidecar ingress, an outbound route table per HTTP port, egress listeners
// for Sidecar egress entries with a port and bind, and http_proxy.
func (b *builder) buildSidecar() {
	b.buildInbound()
	b.buildEgress() // builds the per-port route tables its listeners reference
	httpProxy := b.mesh.ProxyHTTPPort != 0 && b.addr != ""
	b.buildPassthrough() // external.go: ALLOW_ANY's PassthroughCluster
	if httpProxy {
		b.out.Listeners[httpProxyName] = b.outboundHTTPListener(httpProxyName, b.addr, b.mesh.ProxyHTTPPort, httpProxyName, true)
		b.out.Routes[httpProxyName] = b.routeTable(httpProxyName, 0, b.httpProxyRouteConfig)
	}
}

// buildInbound: each Sidecar ingress becomes listener inbound_ADDR_PORT and
// cluster inbound|PORT|| pointing at its defaultEndpoint.
func (b *builder) buildInbound() {
	for _, ing := range b.sidecar.GetIngress() {
		port := ing.GetPort().GetNumber()
		addr := ing.GetBind()
		if addr == "" {
			addr = b.addr
		}
		if port == 0 || addr == "" {
			continue
		}
		appHost, appPort, ok := b.defaultEndpoint(ing.GetDefaultEndpoint())
		if !ok {
			continue
		}
		http := registry.ParseProtocol(ing.GetPort().GetProtocol(), ing.GetPort().GetName()).IsHTTP()
		name := "inbound_" + listenerName(addr, port)
		cluster := inboundName(port)
		b.out.Clusters[cluster] = inboundCluster(port, appHost, appPort, http)
		// security_peerauthn.go: mTLS filter chains, authn/authz filters.
		b.out.Listeners[name] = b.inboundListener(name, addr, port, cluster, http)
		if http {
			b.out.Routes[cluster] = inboundRouteConfig(port)
		}
	}
}

// defaultEndpoint reads a Sidecar ingress defaultEndpoint "HOST:PORT";
// 0.0.0.0 means the workload's own address (Istio: the instance IP).
//
// TODO(next issue): unix domain socket endpoints ("unix:///path").
func (b *builder) defaultEndpoint(s string) (string, uint32, bool) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return "", 0, false
	}
	if host == "" || host == "0.0.0.0" {
		host = b.addr
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, uint32(port), true
}

// buildEgress: a Sidecar egress entry with a port and a bind becomes
// listener BIND_PORT. HTTP routes by route table PORT when the entry's hosts
// select exactly the services the table holds, else by its own table
// BIND_PORT; TCP goes to the first selected service on the port.
func (b *builder) buildEgress() {
	for _, eg := range b.sidecar.GetEgress() {
		port, bind := eg.GetPort().GetNumber(), eg.GetBind()
		if port == 0 || bind == "" {
			continue
		}
		name := listenerName(bind, port)
		keep := func(s *registry.Service) bool { return b.egressSelects(eg.GetHosts(), s) }
		if b.egressIsHTTP(eg, keep) {
			mine := b.servicesOnPort(port, true, keep)
			routeName := portString(port)
			if !slices.Equal(mine, b.servicesOnPort(port, true, nil)) {
				routeName = name
			}
			if _, ok := b.out.Routes[routeName]; !ok {
				b.out.Routes[routeName] = b.routeTable(routeName, port, func() *routev3.RouteConfiguration {
					return b.outboundRouteConfig(routeName, port, mine)
				})
			}
			b.out.Listeners[name] = b.outboundHTTPListener(name, bind, port, routeName, false)
			continue
		}
		b.out.Listeners[name] = b.egressTCPListener(name, bind, port, keep) // tcproute.go
	}
}

// egressIsHTTP decides an egress listener's protocol: its port's protocol,
// or when unset, HTTP if every selected service on the port speaks HTTP.
func (b *builder) egressIsHTTP(eg *networkingv1.IstioEgressListener, keep func(*registry.Service) bool) bool {
	p := eg.GetPort()
	if proto := registry.ParseProtocol(p.GetProtocol(), p.GetName()); proto != registry.ProtocolUnknown {
		return proto.IsHTTP()
	}
	http := b.servicesOnPort(p.GetNumber(), true, keep)
	other := b.servicesOnPort(p.GetNumber(), false, keep)
	return len(http) > 0 && len(other) == 0
}

// hostPort joins a vhost domain with a port; "*" stays bare.
func hostPort(host string, port uint32) []string {
	if host == "*" {
		return []string{"*"}
	}
	return []string{host, host + ":" + portString(port)}
}
