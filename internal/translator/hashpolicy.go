package translator

import (
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingv1 "istio.io/api/networking/v1"
)

// withHashPolicies sets route.hash_policy on every route whose destination
// cluster has a DestinationRule consistentHash, as Istio does (the cluster
// carries RING_HASH or MAGLEV; the route says what to hash). A weighted
// route gets the policy of its first destination that has one. routes
// is modified in place and returned.
func (b *builder) withHashPolicies(routes []*routev3.Route) []*routev3.Route {
	for _, r := range routes {
		ra := r.GetRoute()
		if ra == nil {
			continue
		}
		var names []string
		switch cs := ra.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			names = []string{cs.Cluster}
		case *routev3.RouteAction_WeightedClusters:
			for _, cw := range cs.WeightedClusters.GetClusters() {
				names = append(names, cw.GetName())
			}
		}
		for _, n := range names {
			if hp := b.clusterHashPolicy(n); hp != nil {
				ra.HashPolicy = []*routev3.RouteAction_HashPolicy{hp}
				break
			}
		}
	}
	return routes
}

// clusterHashPolicy returns the hash policy of outbound cluster name, or nil.
func (b *builder) clusterHashPolicy(name string) *routev3.RouteAction_HashPolicy {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 || parts[0] != "outbound" {
		return nil
	}
	port, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return nil
	}
	svc := b.anyService(parts[3])
	if svc == nil {
		return nil
	}
	return hashPolicy(b.policyFor(svc, uint32(port), parts[2]).lb.GetConsistentHash())
}

// hashPolicy is Istio's consistentHashToHashPolicy.
func hashPolicy(ch *networkingv1.LoadBalancerSettings_ConsistentHashLB) *routev3.RouteAction_HashPolicy {
	switch ch.GetHashKey().(type) {
	case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: ch.GetHttpHeaderName()},
		}}
	case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		c := ch.GetHttpCookie()
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: c.GetName(), Path: c.GetPath()}
		if c.GetTtl() != nil {
			// A ttl makes Envoy generate the cookie when the request has
			// none (issue 3: "generated with ttl when absent").
			cookie.Ttl = duration(c.GetTtl().AsDuration())
		}
		for _, a := range c.GetAttributes() {
			cookie.Attributes = append(cookie.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case *networkingv1.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: ch.GetUseSourceIp()},
		}}
	case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: ch.GetHttpQueryParameterName()},
		}}
	}
	return nil
}
