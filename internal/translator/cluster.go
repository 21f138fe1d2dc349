package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// buildClusters emits outbound|PORT||HOST and one cluster per
// DestinationRule subset for every visible service port, their
// ClusterLoadAssignments, and BlackHoleCluster. Each cluster carries the
// DestinationRule policy merged as Istio merges it (trafficpolicy.go).
func (b *builder) buildClusters() {
	b.buildOutboundClusters(nil)
	b.out.Clusters[blackHoleCluster] = &clusterv3.Cluster{
		Name:                 blackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       duration(defaultConnectTimeout),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: blackHoleCluster},
	}
}

// buildOutboundClusters adds the outbound clusters of the visible services
// whose hostname passes keep (nil: all) and their ClusterLoadAssignments.
func (b *builder) buildOutboundClusters(keep func(host string) bool) {
	for _, svc := range b.visible {
		if keep != nil && !keep(svc.Hostname) {
			continue
		}
		dr := b.destinationRule(svc)
		for pi := range svc.Ports {
			b.addOutboundCluster(svc, dr, pi, -1)
			for si, ss := range dr.GetSubsets() {
				if ss.GetName() == "" {
					continue
				}
				b.addOutboundCluster(svc, dr, pi, si)
			}
		}
	}
}

// addOutboundCluster adds the cluster of svc.Ports[pi] for DestinationRule
// dr's subset si (-1: none), from the cache when another proxy needed the
// same one.
func (b *builder) addOutboundCluster(svc *registry.Service, dr *networkingv1.DestinationRule, pi, si int) {
	port := svc.Ports[pi]
	var (
		subset string
		labels map[string]string
		pol    = mergePolicy(nil, dr.GetTrafficPolicy(), port.Number)
	)
	if si >= 0 {
		ss := dr.GetSubsets()[si]
		subset, labels = ss.GetName(), ss.GetLabels()
		pol = mergePolicy(dr.GetTrafficPolicy(), ss.GetTrafficPolicy(), port.Number)
	}
	name := clusterName(port.Number, subset, svc.Hostname)
	if _, dup := b.out.Clusters[name]; dup {
		// Two visible services share a hostname (different namespaces): the
		// first, in the proxy's own namespace when there is one, wins.
		return
	}
	var oc outboundCluster
	if b.cache == nil {
		oc = b.newOutboundCluster(name, svc, port, subset, labels, pol)
	} else {
		k := clusterKey{svc: svc, port: pi, subset: si, dr: dr, proxyless: b.proxy.Type == Proxyless, locality: b.localityKey(pol)}
		oc = memo(b.cache, b.snap, cacheClusters, k, func() outboundCluster {
			return b.newOutboundCluster(name, svc, port, subset, labels, pol)
		})
	}
	b.out.Clusters[name] = oc.cluster
	if oc.eds != nil {
		b.out.Endpoints[name] = oc.eds
	}
}

// newOutboundCluster builds cluster name and, when it is EDS, its
// ClusterLoadAssignment. Everything it reads of the proxy is in clusterKey
// (cache.go).
func (b *builder) newOutboundCluster(name string, svc *registry.Service, port registry.Port, subset string,
	labels map[string]string, pol trafficPolicy) outboundCluster {
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: duration(defaultConnectTimeout),
	}
	cla := loadAssignment(name, port, b.reg.EndpointsOf(svc), labels, b.failoverPriority(pol))
	b.setDiscovery(c, svc, cla) // external.go: EDS, STRICT_DNS, LOGICAL_DNS or ORIGINAL_DST
	applyPolicy(c, pol, svc, port)
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		return outboundCluster{cluster: c} // PASSTHROUGH: no endpoints
	}
	if c.LoadAssignment != nil {
		cla = c.LoadAssignment // DNS clusters carry theirs inline
	}
	b.applyLocalityLB(c, cla, pol)
	b.upstreamTLS(c, svc, port, subset) // security_mtls.go: ISTIO_MUTUAL and auto mTLS
	if c.GetType() == clusterv3.Cluster_EDS {
		return outboundCluster{cluster: c, eds: cla}
	}
	return outboundCluster{cluster: c}
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
	if b.cache == nil {
		return b.findDestinationRule(svc)
	}
	return memo(b.cache, b.snap, cacheDRs, drKey{ns: b.ns, svc: svc}, func() *networkingv1.DestinationRule {
		return b.findDestinationRule(svc)
	})
}

func (b *builder) findDestinationRule(svc *registry.Service) *networkingv1.DestinationRule {
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
			if !registry.HostMatches(h, svc.Hostname) {
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
