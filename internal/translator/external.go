package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// Names Istio gives the catch-all of outbound traffic (docs/xds.md).
const (
	passthroughCluster = "PassthroughCluster"
	allowAnyName       = "allow_any" // virtual host and route of ALLOW_ANY
	blockAllName       = "block_all" // virtual host and route of REGISTRY_ONLY
)

// registryOnly reports the proxy's outboundTrafficPolicy: the Sidecar's
// when it sets one, else the mesh's (meshConfig.outboundTrafficPolicy,
// ALLOW_ANY by default). Gateways have none: unknown hosts are a 404 there.
func (b *builder) registryOnly() bool {
	if otp := b.sidecar.GetOutboundTrafficPolicy(); otp != nil {
		return otp.GetMode() == networkingv1.OutboundTrafficPolicy_REGISTRY_ONLY
	}
	return b.mesh.OutboundRegistryOnly
}

// catchAllVirtualHost is what an outbound route table answers for hosts no
// service claims, as Istio builds it: ALLOW_ANY routes to the
// PassthroughCluster with no timeout; REGISTRY_ONLY answers 502 from virtual host block_all, which the
// proxy counts like any response (route name block_all, flag NR is not set:
// the request did match a route).
func (b *builder) catchAllVirtualHost() *routev3.VirtualHost {
	if b.registryOnly() {
		return &routev3.VirtualHost{
			Name:    blockAllName,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   blockAllName,
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
			}},
		}
	}
	return &routev3.VirtualHost{
		Name:    allowAnyName,
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  allowAnyName,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: passthroughCluster},
				Timeout:          duration(0),
			}},
		}},
	}
}

// addCatchAll appends the catch-all virtual host to rc unless a virtual host
// already claims "*".
func (b *builder) addCatchAll(rc *routev3.RouteConfiguration, seen domainSet) {
	if len(seen.claim([]string{"*"})) == 0 {
		return
	}
	rc.VirtualHosts = append(rc.VirtualHosts, b.catchAllVirtualHost())
}

// unknownTCPCluster is where a sidecar's TCP traffic for no known service
// goes: PassthroughCluster under ALLOW_ANY, BlackHoleCluster under
// REGISTRY_ONLY.
func (b *builder) unknownTCPCluster() string {
	if b.registryOnly() {
		return blackHoleCluster
	}
	return passthroughCluster
}

// buildPassthrough emits Istio's PassthroughCluster for ALLOW_ANY
// sidecars: ORIGINAL_DST, CLUSTER_PROVIDED, the downstream's HTTP version.
// Trellis adds original_dst_lb_config.use_http_header: an HTTP request may
// name its destination IP:PORT in x-envoy-original-dst-host, which is how
// the http_proxy listener (no traffic capture, so no original destination)
// passes unknown hosts through; without the header Envoy uses the
// connection's original destination as Istio's cluster does.
func (b *builder) buildPassthrough() {
	if b.registryOnly() {
		return
	}
	b.out.Clusters[passthroughCluster] = &clusterv3.Cluster{
		Name:                 passthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       duration(defaultConnectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		LbConfig: &clusterv3.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &clusterv3.Cluster_OriginalDstLbConfig{
			UseHttpHeader: true,
		}},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{nameHTTPProtocolOpt: typed(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
				UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
					HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		})},
	}
}

// outboundHTTPListener is a sidecar's outbound HTTP listener: the common
// connection manager with, ahead of the router, the fault and CORS filters
// its routes use.
func (b *builder) outboundHTTPListener(name, addr string, port uint32, routeName string, absoluteURL bool) *listenerv3.Listener {
	h := hcm(name, routeName, absoluteURL)
	h.HttpFilters = append(b.routeFiltersUsed(b.meshVS).httpFilters(), h.HttpFilters...)
	return socketListener(name, addr, port, corev3.TrafficDirection_OUTBOUND, &listenerv3.Filter{
		Name:       nameHCM,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(h)},
	})
}

// setDiscovery sets how cluster c finds svc's endpoints, by resolution as
// Istio does: DNS is STRICT_DNS and DNS_ROUND_ROBIN LOGICAL_DNS, both with
// the inline load_assignment cla; NONE on a MESH_EXTERNAL service is
// ORIGINAL_DST with CLUSTER_PROVIDED (connections go where the client sent
// them); STATIC is EDS (the caller publishes cla). A MESH_INTERNAL service
// with resolution NONE (the field's default) stays EDS over its
// WorkloadEntries: without traffic capture there is no original
// destination to pass through to, and Trellis users rely on the default.
func (b *builder) setDiscovery(c *clusterv3.Cluster, svc *registry.Service, cla *endpointv3.ClusterLoadAssignment) {
	switch svc.Resolution {
	case registry.ResolutionDNS:
		typ := clusterv3.Cluster_STRICT_DNS
		if b.serviceEntryResolution(svc) == networkingv1.ServiceEntry_DNS_ROUND_ROBIN {
			typ = clusterv3.Cluster_LOGICAL_DNS
			// Envoy: a LOGICAL_DNS cluster has exactly one endpoint.
			cla = firstEndpoint(cla)
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: typ}
		c.LoadAssignment = cla
	case registry.ResolutionNone:
		if !svc.External {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
			c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: c.GetName()}
			return
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: c.GetName()}
	}
}

// serviceEntryResolution reads the resolution as written in svc's
// ServiceEntry (the registry folds DNS and DNS_ROUND_ROBIN together).
func (b *builder) serviceEntryResolution(svc *registry.Service) networkingv1.ServiceEntry_Resolution {
	r := b.snap.Config.Get(svc.Origin)
	if r == nil {
		return networkingv1.ServiceEntry_DNS
	}
	se, ok := r.Spec.(*networkingv1.ServiceEntry)
	if !ok {
		return networkingv1.ServiceEntry_DNS
	}
	return se.GetResolution()
}

func firstEndpoint(cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
	for _, l := range cla.GetEndpoints() {
		if len(l.GetLbEndpoints()) > 0 {
			one := &endpointv3.LocalityLbEndpoints{
				Locality:            l.GetLocality(),
				LbEndpoints:         l.GetLbEndpoints()[:1],
				LoadBalancingWeight: l.GetLoadBalancingWeight(),
				Priority:            l.GetPriority(),
			}
			return &endpointv3.ClusterLoadAssignment{ClusterName: cla.GetClusterName(), Endpoints: []*endpointv3.LocalityLbEndpoints{one}}
		}
	}
	return cla
}
