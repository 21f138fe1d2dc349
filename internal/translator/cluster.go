package translator

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// clusterPolicy is the part of a DestinationRule trafficPolicy Trellis
// applies to clusters.
type clusterPolicy struct {
	lb             clusterv3.Cluster_LbPolicy
	connectTimeout time.Duration
}

// apply layers tp over cp: top level, then the port-level entry for port.
func (cp *clusterPolicy) apply(tp *networkingv1.TrafficPolicy, port uint32) {
	if tp == nil {
		return
	}
	cp.applyLevel(tp.GetLoadBalancer(), tp.GetConnectionPool())
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			cp.applyLevel(pl.GetLoadBalancer(), pl.GetConnectionPool())
		}
	}
}

func (cp *clusterPolicy) applyLevel(lb *networkingv1.LoadBalancerSettings, pool *networkingv1.ConnectionPoolSettings) {
	switch lb.GetSimple() {
	case networkingv1.LoadBalancerSettings_ROUND_ROBIN:
		cp.lb = clusterv3.Cluster_ROUND_ROBIN
	case networkingv1.LoadBalancerSettings_LEAST_REQUEST, networkingv1.LoadBalancerSettings_LEAST_CONN:
		cp.lb = clusterv3.Cluster_LEAST_REQUEST
	case networkingv1.LoadBalancerSettings_RANDOM:
		cp.lb = clusterv3.Cluster_RANDOM
	}
	// TODO(next issue): consistentHash, PASSTHROUGH, locality LB, outlier
	// detection, TLS and the rest of connectionPool.
	if ct := pool.GetTcp().GetConnectTimeout(); ct != nil {
		cp.connectTimeout = ct.AsDuration()
	}
}

// buildClusters emits outbound|PORT||HOST and one cluster per
// DestinationRule subset for every visible service port, their
// ClusterLoadAssignments, and BlackHoleCluster.
func (b *builder) buildClusters() {
	for _, svc := range b.visible {
		dr := b.destinationRule(svc)
		eps := b.reg.EndpointsOf(svc)
		for _, port := range svc.Ports {
			base := clusterPolicy{lb: clusterv3.Cluster_ROUND_ROBIN, connectTimeout: defaultConnectTimeout}
			base.apply(dr.GetTrafficPolicy(), port.Number)
			b.addOutboundCluster(svc, port, "", nil, eps, base)
			for _, ss := range dr.GetSubsets() {
				if ss.GetName() == "" {
					continue
				}
				pol := base
				pol.apply(ss.GetTrafficPolicy(), port.Number)
				b.addOutboundCluster(svc, port, ss.GetName(), ss.GetLabels(), eps, pol)
			}
		}
	}
	b.out.Clusters[blackHoleCluster] = &clusterv3.Cluster{
		Name:                 blackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       duration(defaultConnectTimeout),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: blackHoleCluster},
	}
}

func (b *builder) addOutboundCluster(svc *registry.Service, port registry.Port, subset string, labels map[string]string,
	eps []*registry.Endpoint, pol clusterPolicy) {
	name := clusterName(port.Number, subset, svc.Hostname)
	if _, dup := b.out.Clusters[name]; dup {
		// Two visible services share a hostname (different namespaces): the
		// first, in the proxy's own namespace when there is one, wins.
		return
	}
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: duration(pol.connectTimeout),
		LbPolicy:       pol.lb,
	}
	cla := loadAssignment(name, port, eps, labels)
	if svc.Resolution == registry.ResolutionDNS {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.LoadAssignment = cla
	} else {
		// TODO(next issue): resolution NONE is Istio's ORIGINAL_DST
		// pass-through; until then it is served like STATIC.
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name}
		b.out.Endpoints[name] = cla
	}
	if port.Protocol.IsHTTP2() {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{nameHTTPProtocolOpt: typed(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})}
	}
	b.out.Clusters[name] = c
}

// inboundCluster is inbound|PORT||: STATIC, one endpoint, the app.
func inboundCluster(port uint32, host string, appPort uint32, http bool) *clusterv3.Cluster {
	name := inboundName(port)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       duration(defaultConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, appPort)}},
				}},
			}},
		},
	}
	if http {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{nameHTTPProtocolOpt: typed(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
				UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
					HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		})}
	}
	return c
}

// destinationRule finds the DestinationRule for svc as Istio does: in the
// proxy's namespace, then the service's, then the root namespace, each
// exported to the proxy's namespace; within a namespace an exact host beats
// the most specific wildcard.
func (b *builder) destinationRule(svc *registry.Service) *networkingv1.DestinationRule {
	for _, ns := range []string{b.ns, svc.Namespace, b.mesh.RootNamespace} {
		if ns == "" {
			continue
		}
		var best *networkingv1.DestinationRule
		bestLen := -1
		for _, r := range b.snap.Config.List(config.KindDestinationRule) {
			dr, ok := r.Spec.(*networkingv1.DestinationRule)
			if !ok || r.Meta.Namespace != ns || !b.exportedTo(dr.GetExportTo(), r.Meta.Namespace) {
				continue
			}
			if dr.GetWorkloadSelector() != nil {
				// TODO(next issue): workload-scoped DestinationRules.
				continue
			}
			h := b.fqdn(dr.GetHost(), r.Meta.Namespace)
			if !hostMatches(h, svc.Hostname) {
				continue
			}
			n := len(h)
			if h == svc.Hostname {
				n = 1 << 20
			}
			if n > bestLen {
				best, bestLen = dr, n
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}
