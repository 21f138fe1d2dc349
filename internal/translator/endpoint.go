package translator

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// loadAssignment groups the endpoints of one service port that carry every
// label of subset (nil: all) by locality and, when prio is not nil, by the
// priority prio gives each endpoint (failoverPriority, locality.go).
// Groups are sorted by priority, then locality name, and always carry a
// weight, the sum of their endpoints' (gRPC ignores a locality without one);
// endpoints are sorted by address and port.
func loadAssignment(name string, port registry.Port, eps []*registry.Endpoint, subset map[string]string,
	prio func(*registry.Endpoint) uint32) *endpointv3.ClusterLoadAssignment {
	type key struct {
		priority uint32
		locality string
	}
	type group struct {
		weight uint32
		eps    []*endpointv3.LbEndpoint
	}
	groups := map[key]*group{}
	for _, ep := range eps {
		if ep.Address == "" || !registry.LabelsMatch(subset, ep.Labels) {
			continue
		}
		k := key{locality: ep.Locality}
		if prio != nil {
			k.priority = prio(ep)
		}
		g := groups[k]
		if g == nil {
			g = &group{}
			groups[k] = g
		}
		w := max(ep.Weight, 1)
		g.weight += w
		health := corev3.HealthStatus_HEALTHY
		if !ep.Healthy {
			health = corev3.HealthStatus_UNHEALTHY
		}
		g.eps = append(g.eps, &endpointv3.LbEndpoint{
			HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ep.Address, ep.PortFor(port))}},
			HealthStatus:        health,
			LoadBalancingWeight: wrapperspb.UInt32(w),
			Metadata:            endpointMetadata(ep), // security_mtls.go: tlsMode for auto mTLS
		})
	}
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.locality, b.locality))
	})
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for _, k := range keys {
		g := groups[k]
		slices.SortStableFunc(g.eps, func(a, b *endpointv3.LbEndpoint) int {
			sa, sb := a.GetEndpoint().GetAddress().GetSocketAddress(), b.GetEndpoint().GetAddress().GetSocketAddress()
			return cmp.Or(cmp.Compare(sa.GetAddress(), sb.GetAddress()), cmp.Compare(sa.GetPortValue(), sb.GetPortValue()))
		})
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:            parseLocality(k.locality),
			LbEndpoints:         g.eps,
			LoadBalancingWeight: wrapperspb.UInt32(g.weight),
			Priority:            k.priority,
		})
	}
	return cla
}

// parseLocality reads Istio's "region/zone/subzone"; missing parts are
// empty. The result is never nil: gRPC rejects a locality-less group.
func parseLocality(s string) *corev3.Locality {
	parts := strings.SplitN(s, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return &corev3.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
}
