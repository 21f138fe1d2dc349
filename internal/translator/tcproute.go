package translator

import (
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// nameSNIInspector is Envoy's tls_inspector listener filter, which reads
// the SNI that server_names match.
const nameSNIInspector = "envoy.filters.listener.tls_inspector"

// chainSet collects the filter chains of one listener. Envoy rejects two
// chains with the same filter_chain_match, so the first to claim a match
// keeps it, which reproduces Istio's first-rule-wins for equal matches.
type chainSet struct {
	chains []*listenerv3.FilterChain
	sni    bool // some chain matches server_names: add tls_inspector
}

func (cs *chainSet) add(fc *listenerv3.FilterChain) {
	if slices.ContainsFunc(cs.chains, func(c *listenerv3.FilterChain) bool {
		return proto.Equal(c.GetFilterChainMatch(), fc.GetFilterChainMatch())
	}) {
		return
	}
	cs.sni = cs.sni || len(fc.GetFilterChainMatch().GetServerNames()) > 0
	cs.chains = append(cs.chains, fc)
}

// hasDefault reports whether a chain matches every connection.
func (cs *chainSet) hasDefault() bool {
	return slices.ContainsFunc(cs.chains, func(c *listenerv3.FilterChain) bool { return c.GetFilterChainMatch() == nil })
}

// listener wraps the chains; tls_inspector comes first when any chain
// matches on SNI (Envoy needs it to read server_names).
func (cs *chainSet) listener(name, addr string, port uint32, dir corev3.TrafficDirection) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(addr, port),
		TrafficDirection: dir,
		FilterChains:     cs.chains,
	}
	if cs.sni {
		l.ListenerFilters = []*listenerv3.ListenerFilter{sniInspector()}
	}
	return l
}

func sniInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       nameSNIInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&tlsinspectorv3.TlsInspector{})},
	}
}

// tcpProxyFilter routes to one cluster, or by weight when there are several.
func tcpProxyFilter(statPrefix string, clusters []string, weights []uint32) *listenerv3.Filter {
	tp := &tcpv3.TcpProxy{StatPrefix: statPrefix}
	if len(clusters) == 1 {
		tp.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: clusters[0]}
	} else {
		wc := &tcpv3.TcpProxy_WeightedCluster{}
		for i, c := range clusters {
			wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c, Weight: weights[i]})
		}
		tp.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{Name: nameTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(tp)}}
}

// chainMatch is a filter_chain_match on destination subnets and SNI; nil
// when both are empty (the chain then matches everything).
func chainMatch(subnets, sni []string) *listenerv3.FilterChainMatch {
	if len(subnets) == 0 && len(sni) == 0 {
		return nil
	}
	m := &listenerv3.FilterChainMatch{ServerNames: slices.Clone(sni)}
	for _, s := range subnets {
		m.PrefixRanges = append(m.PrefixRanges, cidrRange(s))
	}
	return m
}

// cidrRange converts an IP or CIDR (validated at ingest) to a CidrRange.
func cidrRange(s string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(s); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
	}
	a, _ := netip.ParseAddr(s)
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}
}

// l4Applies filters a tcp or tls match by the attributes Istio evaluates
// when it generates config: port, gateways, source labels and namespace.
func (b *builder) l4Applies(port uint32, mPort uint32, gateways []string, sourceLabels map[string]string, sourceNS, gw, vsNS string) bool {
	if mPort != 0 && mPort != port {
		return false
	}
	if len(gateways) > 0 && !slices.ContainsFunc(gateways, func(g string) bool { return gatewayKey(g, vsNS) == gw }) {
		return false
	}
	if gw == "mesh" {
		if len(sourceLabels) > 0 && (b.labels == nil || !registry.LabelsMatch(sourceLabels, b.labels)) {
			return false
		}
		if sourceNS != "" && sourceNS != b.ns {
			return false
		}
	}
	return true
}

// destinations resolves route destinations to clusters and weights (a
// single destination's weight is ignored; zero weights are dropped when
// there are several).
func (b *builder) destinations(ds []*networkingv1.RouteDestination, ns string, port uint32) ([]string, []uint32) {
	var clusters []string
	var weights []uint32
	for _, d := range ds {
		if len(ds) > 1 && d.GetWeight() <= 0 {
			continue
		}
		clusters = append(clusters, b.destinationCluster(d.GetDestination(), ns, port))
		weights = append(weights, uint32(max(d.GetWeight(), 1)))
	}
	if len(clusters) == 0 && len(ds) > 0 {
		return []string{b.destinationCluster(ds[0].GetDestination(), ns, port)}, []uint32{1}
	}
	return clusters, weights
}

// tcpRouteChains adds the chains of VirtualService r's tcp routes for a
// listener on port seen from gateway gw: one chain per applicable match,
// matching its destinationSubnets; a match without subnets (or a rule
// without matches) is the listener's default chain.
func (b *builder) tcpRouteChains(cs *chainSet, r *config.Resource, port uint32, gw, statPrefix string) {
	vs := r.Spec.(*networkingv1.VirtualService)
	for _, tr := range vs.GetTcp() {
		clusters, weights := b.destinations(tr.GetRoute(), r.Meta.Namespace, port)
		if len(clusters) == 0 {
			continue
		}
		matches := tr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingv1.L4MatchAttributes{nil}
		}
		for _, m := range matches {
			if m != nil && !b.l4Applies(port, m.GetPort(), m.GetGateways(), m.GetSourceLabels(), m.GetSourceNamespace(), gw, r.Meta.Namespace) {
				continue
			}
			cs.add(&listenerv3.FilterChain{
				FilterChainMatch: chainMatch(m.GetDestinationSubnets(), nil),
				Filters:          []*listenerv3.Filter{tcpProxyFilter(statPrefix, clusters, weights)},
			})
		}
	}
}

// tlsRouteChains adds the chains of VirtualService r's tls routes: one per
// applicable match, on its sniHosts (narrowed to allowed when not nil) and
// destinationSubnets, passing the TLS stream through untouched.
func (b *builder) tlsRouteChains(cs *chainSet, r *config.Resource, port uint32, gw, statPrefix string, allowed []string) {
	vs := r.Spec.(*networkingv1.VirtualService)
	for _, tr := range vs.GetTls() {
		clusters, weights := b.destinations(tr.GetRoute(), r.Meta.Namespace, port)
		if len(clusters) == 0 {
			continue
		}
		for _, m := range tr.GetMatch() {
			if !b.l4Applies(port, m.GetPort(), m.GetGateways(), m.GetSourceLabels(), m.GetSourceNamespace(), gw, r.Meta.Namespace) {
				continue
			}
			sni := sniWithin(m.GetSniHosts(), allowed)
			if len(sni) == 0 {
				continue
			}
			cs.add(&listenerv3.FilterChain{
				FilterChainMatch: chainMatch(m.GetDestinationSubnets(), sni),
				Filters:          []*listenerv3.Filter{tcpProxyFilter(statPrefix, clusters, weights)},
			})
		}
	}
}

// sniWithin keeps the SNI hosts that the allowed patterns cover (all of
// them when allowed is nil); a host "*" matches any name, which Envoy
// expresses as no server_names, so it is dropped in favour of the others.
func sniWithin(hosts, allowed []string) []string {
	var out []string
	for _, h := range hosts {
		if allowed != nil && !slices.ContainsFunc(allowed, func(a string) bool { return registry.HostsIntersect(a, h) }) {
			continue
		}
		if h == "*" {
			continue
		}
		out = append(out, strings.ToLower(h))
	}
	return out
}

// egressTCPListener builds a sidecar egress listener for a non-HTTP port.
// For each selected service the VirtualService governing it contributes its
// tcp routes (by destination subnet) and tls routes (by SNI); a TLS or
// HTTPS service without tls routes is matched by its own hostname as SNI,
// and a TCP service without tcp routes takes the default chain. Whatever
// matches nothing goes to PassthroughCluster (ALLOW_ANY) or
// BlackHoleCluster (REGISTRY_ONLY).
func (b *builder) egressTCPListener(name, bind string, port uint32, keep func(*registry.Service) bool) *listenerv3.Listener {
	cs := &chainSet{}
	var plain []*registry.Service
	for _, svc := range b.servicesOnPort(port, false, keep) {
		p, _ := svc.Port(port)
		tlsPort := p.Protocol == registry.ProtocolTLS || p.Protocol == registry.ProtocolHTTPS
		vs := b.virtualServiceFor(b.meshVS, svc.Hostname)
		var spec *networkingv1.VirtualService
		if vs != nil {
			spec = vs.Spec.(*networkingv1.VirtualService)
		}
		switch {
		case tlsPort && len(spec.GetTls()) > 0:
			b.tlsRouteChains(cs, vs, port, "mesh", name, nil)
		case tlsPort:
			cs.add(&listenerv3.FilterChain{
				FilterChainMatch: chainMatch(nil, []string{svc.Hostname}),
				Filters:          []*listenerv3.Filter{tcpProxyFilter(name, []string{clusterName(port, "", svc.Hostname)}, nil)},
			})
		case len(spec.GetTcp()) > 0:
			b.tcpRouteChains(cs, vs, port, "mesh", name)
		default:
			plain = append(plain, svc)
		}
	}
	// Services without routes: the first takes the default chain; with
	// several, each also matches its own addresses (Istio matches the
	// service VIP).
	for i, svc := range plain {
		var subnets []string
		for _, a := range svc.Addresses {
			if _, err := netip.ParseAddr(a); err == nil {
				subnets = append(subnets, a)
			} else if _, err := netip.ParsePrefix(a); err == nil {
				subnets = append(subnets, a)
			}
		}
		f := tcpProxyFilter(name, []string{clusterName(port, "", svc.Hostname)}, nil)
		if len(subnets) > 0 && len(plain) > 1 {
			cs.add(&listenerv3.FilterChain{FilterChainMatch: chainMatch(subnets, nil), Filters: []*listenerv3.Filter{f}})
		}
		if i == 0 {
			cs.add(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{f}})
		}
	}
	if !cs.hasDefault() {
		cs.add(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(name, []string{b.unknownTCPCluster()}, nil)}})
	}
	return cs.listener(name, bind, port, corev3.TrafficDirection_OUTBOUND)
}
