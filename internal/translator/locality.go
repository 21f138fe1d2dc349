package translator

import (
	"maps"
	"math"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// Locality-aware load balancing, as Istio's pilot/pkg/networking/core/
// loadbalancer does it for the proxy being translated (its WorkloadEntry's
// locality and labels):
//
//   - localityLbSetting.distribute: the matching "from" rule rewrites each
//     locality's load_balancing_weight to its share of "to", and the cluster
//     gets common_lb_config.locality_weighted_lb_config; localities "to"
//     does not name get no traffic (their group is dropped).
//   - otherwise, only when outlierDetection is set (without it Envoy never
//     moves to a lower priority): failoverPriority labels split endpoints
//     into priorities, then localities get priorities by closeness to the
//     proxy (0 same subzone, 1 same zone, 2 same region, 3 other; 4 for
//     regions a failover rule for the proxy's region does not name),
//     compacted so that they never skip a number.
//
// Istio's mesh default (localityLbSetting enabled) applies when a
// DestinationRule names none; enabled: false turns it all off.

// localitySetting returns the setting in force, or nil when disabled.
func localitySetting(pol trafficPolicy) *networkingv1.LocalityLoadBalancerSetting {
	s := pol.lb.GetLocalityLbSetting()
	switch {
	case s == nil:
		return &networkingv1.LocalityLoadBalancerSetting{} // meshConfig default: enabled
	case s.GetEnabled() != nil && !s.GetEnabled().GetValue():
		return nil
	}
	return s
}

// failoverEnabled reports whether priorities apply: a setting without
// distribute, on a cluster with outlier detection.
func failoverEnabled(pol trafficPolicy) bool {
	s := localitySetting(pol)
	return s != nil && len(s.GetDistribute()) == 0 && pol.outlier != nil
}

// failoverPriority returns the per-endpoint priority of Istio's
// failoverPriority: 0 when the endpoint agrees with the proxy on every
// label, else len(labels)-i for the first label i where they differ. A
// "key=value" entry compares the endpoint's label with value instead of the
// proxy's. nil when failoverPriority does not apply.
func (b *builder) failoverPriority(pol trafficPolicy) func(*registry.Endpoint) uint32 {
	if !failoverEnabled(pol) || len(localitySetting(pol).GetFailoverPriority()) == 0 {
		return nil
	}
	keys := localitySetting(pol).GetFailoverPriority()
	var proxyLoc, proxyNet string
	if b.wl != nil {
		proxyLoc, proxyNet = b.wl.Locality, b.wl.Network
	}
	return func(ep *registry.Endpoint) uint32 {
		for i, k := range keys {
			key, want, fixed := strings.Cut(k, "=")
			if !fixed {
				want = topologyLabel(b.labels, proxyLoc, proxyNet, key)
			}
			if topologyLabel(ep.Labels, ep.Locality, ep.Network, key) != want {
				return uint32(len(keys) - i)
			}
		}
		return 0
	}
}

// topologyLabel reads label key, with Istio's topology labels derived from
// locality and network when the labels do not carry them.
func topologyLabel(labels map[string]string, locality, network, key string) string {
	if v, ok := labels[key]; ok {
		return v
	}
	loc := parseLocality(locality)
	switch key {
	case "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region":
		return loc.GetRegion()
	case "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone":
		return loc.GetZone()
	case "topology.istio.io/subzone":
		return loc.GetSubZone()
	case "topology.istio.io/network":
		return network
	}
	return ""
}

// applyLocalityLB rewrites cla's locality weights or priorities for the
// proxy (see the comment at the top of this file).
func (b *builder) applyLocalityLB(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment, pol trafficPolicy) {
	s := localitySetting(pol)
	if s == nil {
		return
	}
	var proxyLoc *corev3.Locality
	if b.wl != nil {
		proxyLoc = parseLocality(b.wl.Locality)
	} else {
		proxyLoc = parseLocality("")
	}
	switch {
	case len(s.GetDistribute()) > 0:
		if applyLocalityWeights(proxyLoc, cla, s.GetDistribute()) {
			if c.CommonLbConfig == nil {
				c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
			}
			c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
				LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
			}
		}
	case pol.outlier != nil:
		if len(s.GetFailoverPriority()) == 0 || len(s.GetFailover()) > 0 {
			applyLocalityFailover(proxyLoc, cla, s.GetFailover())
		}
		compactPriorities(cla)
	}
}

// applyLocalityWeights is Istio's applyLocalityWeights; false when no
// "from" rule matches the proxy. Weights are the rule's percentage split
// over the matching localities in proportion to their own weights, rounded
// up.
func applyLocalityWeights(proxy *corev3.Locality, cla *endpointv3.ClusterLoadAssignment, rules []*networkingv1.LocalityLoadBalancerSetting_Distribute) bool {
	for _, rule := range rules {
		if !localityMatch(proxy, rule.GetFrom()) {
			continue
		}
		unmatched := make([]bool, len(cla.Endpoints))
		for i := range unmatched {
			unmatched[i] = true
		}
		// Sorted so that, as in Istio's map walk, a group claimed by an
		// earlier "to" key is not claimed again, but deterministically.
		for _, to := range slices.Sorted(maps.Keys(rule.GetTo())) {
			weight := rule.GetTo()[to]
			picked := map[int]uint32{}
			var total uint32
			for i, g := range cla.Endpoints {
				if unmatched[i] && localityMatch(g.GetLocality(), to) {
					unmatched[i] = false
					w := max(g.GetLoadBalancingWeight().GetValue(), 1)
					picked[i] = w
					total += w
				}
			}
			for i, w := range picked {
				if share := float64(w) * float64(weight) / float64(total); share > 0 {
					cla.Endpoints[i].LoadBalancingWeight = wrapperspb.UInt32(uint32(math.Ceil(share)))
				} else {
					unmatched[i] = true // a 0% share gets no traffic
				}
			}
		}
		kept := cla.Endpoints[:0]
		for i, g := range cla.Endpoints {
			if !unmatched[i] {
				kept = append(kept, g)
			}
		}
		cla.Endpoints = kept
		return true
	}
	return false
}

// applyLocalityFailover is Istio's applyLocalityFailover: priority =
// existing priority × 5 + closeness to the proxy.
func applyLocalityFailover(proxy *corev3.Locality, cla *endpointv3.ClusterLoadAssignment, failover []*networkingv1.LocalityLoadBalancerSetting_Failover) {
	for _, g := range cla.Endpoints {
		p := lbPriority(proxy, g.GetLocality())
		if p == 3 {
			for _, f := range failover {
				if f.GetFrom() == proxy.GetRegion() {
					if g.GetLocality().GetRegion() != f.GetTo() {
						p = 4
					}
					break
				}
			}
		}
		g.Priority = g.Priority*5 + p
	}
}

// compactPriorities renumbers priorities 0..N in order without gaps, as
// Envoy requires, and sorts groups by priority (stable).
func compactPriorities(cla *endpointv3.ClusterLoadAssignment) {
	var seen []uint32
	for _, g := range cla.Endpoints {
		seen = append(seen, g.Priority)
	}
	slices.Sort(seen)
	seen = slices.Compact(seen)
	for _, g := range cla.Endpoints {
		i, _ := slices.BinarySearch(seen, g.Priority)
		g.Priority = uint32(i)
	}
	slices.SortStableFunc(cla.Endpoints, func(a, b *endpointv3.LocalityLbEndpoints) int {
		return int(a.Priority) - int(b.Priority)
	})
}

// lbPriority is Istio's LbPriority: 0 same region, zone and subzone; 1 same
// region and zone; 2 same region; 3 otherwise.
func lbPriority(proxy, ep *corev3.Locality) uint32 {
	switch {
	case proxy.GetRegion() != ep.GetRegion():
		return 3
	case proxy.GetZone() != ep.GetZone():
		return 2
	case proxy.GetSubZone() != ep.GetSubZone():
		return 1
	}
	return 0
}

// localityMatch is Istio's LocalityMatch: rule is "region/zone/subzone",
// each part "*" or a name; missing zone or subzone match anything.
func localityMatch(l *corev3.Locality, rule string) bool {
	r := parseLocality(rule)
	return (r.GetRegion() == "*" || r.GetRegion() == l.GetRegion()) &&
		(r.GetZone() == "*" || r.GetZone() == "" || r.GetZone() == l.GetZone()) &&
		(r.GetSubZone() == "*" || r.GetSubZone() == "" || r.GetSubZone() == l.GetSubZone())
}
