package compile

import (
	"fmt"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Listener is a parsed Listener: the runtime listener plus what it needs
// from other resources. It is immutable once returned.
type Listener struct {
	Runtime *runtime.Listener
	// RDS names the RouteConfiguration the first http_connection_manager
	// subscribes to; empty for tcp_proxy and for an inline route_config.
	// RouteNames lists those of every filter chain.
	RDS        string
	RouteNames []string
	// Inline is the first chain's inline route_config, published in
	// Config.Routes under InlineRouteKey(listener name). Inlines holds those
	// of every chain by the key their HTTPListener.RouteName carries.
	Inline  *runtime.RouteTable
	Inlines map[string]*runtime.RouteTable
}

// InlineRouteKey is the Config.Routes key of listener's inline route_config.
// The "inline:" prefix cannot collide with an RDS name Trellis emits (port
// numbers, "inbound|...", "http.PORT", "http_proxy").
func InlineRouteKey(listener string) string { return "inline:" + listener }

// inlineChainKey is the Config.Routes key of the inline route_config of
// filter chain i (-1: the default chain); chain 0 keeps InlineRouteKey.
func inlineChainKey(listener string, i int) string {
	if i == 0 {
		return InlineRouteKey(listener)
	}
	return fmt.Sprintf("%s#%d", InlineRouteKey(listener), i)
}

// Listener filters of the subset: they only feed filter-chain matching.
const (
	tlsInspectorType  = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	httpInspectorType = "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
)

// ParseListener checks l against the subset in docs/xds.md and converts it.
// l must have passed Decode (or its own Validate).
func ParseListener(l *listenerv3.Listener) (*Listener, error) {
	out, err := parseListener(l)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
	}
	return out, nil
}

func parseListener(l *listenerv3.Listener) (*Listener, error) {
	switch {
	case l.GetApiListener() != nil:
		return nil, fmt.Errorf("api_listener: unsupported (proxyless gRPC only)")
	case l.GetInternalListener() != nil:
		return nil, fmt.Errorf("internal_listener: unsupported")
	case l.GetUdpListenerConfig() != nil:
		return nil, fmt.Errorf("udp_listener_config: unsupported")
	case len(l.GetAdditionalAddresses()) > 0:
		return nil, fmt.Errorf("additional_addresses: unsupported")
	case l.GetUseOriginalDst().GetValue():
		return nil, fmt.Errorf("use_original_dst: unsupported")
	case l.GetFilterChainMatcher() != nil:
		return nil, fmt.Errorf("filter_chain_matcher: unsupported")
	case l.GetFcdsConfig() != nil:
		return nil, fmt.Errorf("fcds_config: unsupported")
	case l.GetBindToPort() != nil && !l.GetBindToPort().GetValue():
		return nil, fmt.Errorf("bind_to_port: false is unsupported")
	}
	addr, err := parseSocketAddress("address", l.GetAddress())
	if err != nil {
		return nil, err
	}
	rl := &runtime.Listener{Name: l.GetName(), Address: addr}
	if err := parseListenerFilters(l, &rl.Inspect); err != nil {
		return nil, err
	}
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		rl.Direction = runtime.Inbound
	case corev3.TrafficDirection_OUTBOUND, corev3.TrafficDirection_UNSPECIFIED:
		rl.Direction = runtime.Outbound
	default:
		return nil, fmt.Errorf("traffic_direction: unsupported %v", l.GetTrafficDirection())
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		return nil, fmt.Errorf("filter_chains: empty and no default_filter_chain")
	}
	out := &Listener{Runtime: rl}
	seen := map[string]int{}
	for i, fc := range l.GetFilterChains() {
		c, err := parseFilterChain(fmt.Sprintf("filter_chains[%d]", i), fc, inlineChainKey(l.GetName(), i), out)
		if err != nil {
			return nil, err
		}
		// Envoy refuses a listener whose chains could never be told apart.
		key := matchKey(c.Match)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("filter_chains[%d]: multiple filter chains with the same matching rules are defined (also filter_chains[%d])", i, j)
		}
		seen[key] = i
		rl.FilterChains = append(rl.FilterChains, c)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		if fc.GetFilterChainMatch() != nil {
			return nil, fmt.Errorf("default_filter_chain.filter_chain_match: must be empty")
		}
		c, err := parseFilterChain("default_filter_chain", fc, inlineChainKey(l.GetName(), -1), out)
		if err != nil {
			return nil, err
		}
		rl.DefaultChain = c
	}
	first := rl.DefaultChain
	if len(rl.FilterChains) > 0 {
		first = rl.FilterChains[0]
	}
	rl.Kind, rl.HTTP, rl.TCP = first.Kind, first.HTTP, first.TCP
	inspectImplied(rl)
	return out, nil
}

// parseListenerFilters reads the inspectors and the peek timeout.
func parseListenerFilters(l *listenerv3.Listener, in *runtime.ListenerFilters) error {
	for i, f := range l.GetListenerFilters() {
		switch f.GetTypedConfig().GetTypeUrl() {
		case tlsInspectorType:
			in.TLSInspector = true
		case httpInspectorType:
			in.HTTPInspector = true
		default:
			return fmt.Errorf("listener_filters[%d]: unsupported listener filter %q", i, f.GetName())
		}
		if f.GetFilterDisabled() != nil {
			return fmt.Errorf("listener_filters[%d].filter_disabled: unsupported", i)
		}
	}
	if t := l.GetListenerFiltersTimeout(); t != nil {
		in.Timeout = t.AsDuration()
		if in.Timeout == 0 {
			in.Timeout = -1 // Envoy: 0 disables the timeout
		}
	}
	in.ContinueOnTimeout = l.GetContinueOnListenerFiltersTimeout()
	return nil
}

// inspectImplied turns on the inspector a chain match cannot work without:
// Envoy once injected the TLS inspector itself for such chains, and Istio's
// listeners always carry it, so a listener that relies on it gets it.
func inspectImplied(rl *runtime.Listener) {
	for _, c := range rl.FilterChains {
		m := c.Match
		if len(m.ServerNames) > 0 || m.TransportProtocol == runtime.TransportTLS {
			rl.Inspect.TLSInspector = true
		}
	}
}

// parseFilterChain converts one filter chain; routeKey is the Config.Routes
// key of an inline route_config.
func parseFilterChain(path string, fc *listenerv3.FilterChain, routeKey string, out *Listener) (*runtime.FilterChain, error) {
	switch {
	case fc.GetUseProxyProto().GetValue():
		return nil, fmt.Errorf("%s.use_proxy_proto: unsupported", path)
	}
	c := &runtime.FilterChain{Name: fc.GetName()}
	m, err := parseChainMatch(path+".filter_chain_match", fc.GetFilterChainMatch())
	if err != nil {
		return nil, err
	}
	c.Match = m
	if ts := fc.GetTransportSocket(); ts != nil {
		if c.TLS, err = parseTransportSocket(path+".transport_socket", ts); err != nil {
			return nil, err
		}
	}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, fmt.Errorf("%s.filters: empty, want http_connection_manager or tcp_proxy", path)
	}
	var netRBAC []*runtime.RBACFilter
	for i, f := range filters {
		fpath := fmt.Sprintf("%s.filters[%d]", path, i)
		if f.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("%s.config_discovery: unsupported", fpath)
		}
		terminal := f.GetTypedConfig().GetTypeUrl() == hcmType || f.GetTypedConfig().GetTypeUrl() == tcpProxyType
		if !terminal && f.GetTypedConfig().GetTypeUrl() == networkRBACType {
			r, err := parseNetworkRBAC(fpath, f)
			if err != nil {
				return nil, err
			}
			netRBAC = append(netRBAC, r)
			continue
		}
		if !terminal {
			return nil, fmt.Errorf("%s: unsupported filter %q", fpath, f.GetName())
		}
		if i != len(filters)-1 {
			return nil, fmt.Errorf("%s: terminal filter %q must be last", fpath, f.GetName())
		}
		switch f.GetTypedConfig().GetTypeUrl() {
		case hcmType:
			var hcm hcmv3.HttpConnectionManager
			if err := unmarshalTyped(f.GetTypedConfig(), hcmType, &hcm); err != nil {
				return nil, fmt.Errorf("%s.%w", fpath, err)
			}
			h, err := parseHCM(fpath+".typed_config", &hcm, routeKey, out)
			if err != nil {
				return nil, err
			}
			c.Kind, c.HTTP = runtime.ListenerHTTP, h
		case tcpProxyType:
			var tp tcpv3.TcpProxy
			if err := unmarshalTyped(f.GetTypedConfig(), tcpProxyType, &tp); err != nil {
				return nil, fmt.Errorf("%s.%w", fpath, err)
			}
			t, err := parseTCPProxy(fpath+".typed_config", &tp)
			if err != nil {
				return nil, err
			}
			c.Kind, c.TCP = runtime.ListenerTCP, t
		}
	}
	if c.HTTP != nil && len(netRBAC) > 1 {
		return nil, fmt.Errorf("%s.filters: %d envoy.filters.network.rbac before an http_connection_manager: unsupported, want at most one", path, len(netRBAC))
	}
	attachNetworkRBAC(c, netRBAC)
	return c, nil
}

// parseHCM converts an http_connection_manager; an inline route_config is
// recorded in out under routeKey.
func parseHCM(path string, hcm *hcmv3.HttpConnectionManager, routeKey string, out *Listener) (*runtime.HTTPListener, error) {
	if hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return nil, fmt.Errorf("%s.codec_type: unsupported %v, want AUTO", path, hcm.GetCodecType())
	}
	if err := nonEmpty(path+".stat_prefix", hcm.GetStatPrefix()); err != nil {
		return nil, err
	}
	h := &runtime.HTTPListener{
		StatPrefix:  hcm.GetStatPrefix(),
		AbsoluteURL: hcm.GetHttpProtocolOptions().GetAllowAbsoluteUrl().GetValue(),
	}
	switch {
	case hcm.GetRds() != nil:
		if err := checkConfigSource(path+".rds.config_source", hcm.GetRds().GetConfigSource()); err != nil {
			return nil, err
		}
		h.RouteName = hcm.GetRds().GetRouteConfigName()
		if out.RDS == "" {
			out.RDS = h.RouteName
		}
		if !slices.Contains(out.RouteNames, h.RouteName) {
			out.RouteNames = append(out.RouteNames, h.RouteName)
		}
	case hcm.GetRouteConfig() != nil:
		rt, err := parseRouteConfiguration(path+".route_config.", hcm.GetRouteConfig())
		if err != nil {
			return nil, err
		}
		h.RouteName = routeKey
		if out.Inline == nil {
			out.Inline = rt
		}
		if out.Inlines == nil {
			out.Inlines = map[string]*runtime.RouteTable{}
		}
		out.Inlines[routeKey] = rt
	case hcm.GetScopedRoutes() != nil:
		return nil, fmt.Errorf("%s.scoped_routes: unsupported", path)
	default:
		return nil, fmt.Errorf("%s: no route_specifier", path)
	}
	if hcm.GetHttp3ProtocolOptions() != nil {
		return nil, fmt.Errorf("%s.http3_protocol_options: unsupported", path)
	}
	if err := parseHTTPFilterChain(path, hcm, h); err != nil {
		return nil, err
	}
	for i, u := range hcm.GetUpgradeConfigs() {
		upath := fmt.Sprintf("%s.upgrade_configs[%d]", path, i)
		if len(u.GetFilters()) > 0 {
			return nil, fmt.Errorf("%s.filters: unsupported", upath)
		}
		switch u.GetUpgradeType() {
		case "websocket", "WebSocket", "Websocket":
			h.WebSocket = u.GetEnabled() == nil || u.GetEnabled().GetValue()
		default:
			return nil, fmt.Errorf("%s.upgrade_type: unsupported %q", upath, u.GetUpgradeType())
		}
	}
	return h, nil
}

// parseHTTPFilters accepts exactly the router, last, optionally preceded by
// filters marked is_optional that Envoy would skip as unknown.
func parseHTTPFilters(path string, filters []*hcmv3.HttpFilter) error {
	router := false
	for i, f := range filters {
		fpath := fmt.Sprintf("%s[%d]", path, i)
		if f.GetConfigDiscovery() != nil {
			return fmt.Errorf("%s.config_discovery: unsupported", fpath)
		}
		if f.GetTypedConfig().GetTypeUrl() != routerType {
			if f.GetIsOptional() {
				continue // Envoy ignores unknown optional filters
			}
			return fmt.Errorf("%s: unsupported http filter %q", fpath, f.GetName())
		}
		if i != len(filters)-1 {
			return fmt.Errorf("%s: router must be the last http filter", fpath)
		}
		var r routerv3.Router
		if err := unmarshalTyped(f.GetTypedConfig(), routerType, &r); err != nil {
			return fmt.Errorf("%s.%w", fpath, err)
		}
		if len(r.GetUpstreamHttpFilters()) > 0 {
			return fmt.Errorf("%s.typed_config.upstream_http_filters: unsupported", fpath)
		}
		router = true
	}
	if !router {
		return fmt.Errorf("%s: no envoy.filters.http.router", path)
	}
	return nil
}

func parseTCPProxy(path string, tp *tcpv3.TcpProxy) (*runtime.TCPListener, error) {
	if tp.GetTunnelingConfig() != nil {
		return nil, fmt.Errorf("%s.tunneling_config: unsupported", path)
	}
	if tp.GetOnDemand() != nil {
		return nil, fmt.Errorf("%s.on_demand: unsupported", path)
	}
	if err := nonEmpty(path+".stat_prefix", tp.GetStatPrefix()); err != nil {
		return nil, err
	}
	t := &runtime.TCPListener{StatPrefix: tp.GetStatPrefix()}
	switch {
	case tp.GetCluster() != "":
		t.Clusters = []runtime.WeightedCluster{{Name: tp.GetCluster(), Weight: 1}}
	case tp.GetWeightedClusters() != nil:
		if len(tp.GetWeightedClusters().GetClusters()) == 0 {
			return nil, fmt.Errorf("%s.weighted_clusters.clusters: empty", path)
		}
		for i, c := range tp.GetWeightedClusters().GetClusters() {
			cpath := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)
			if err := nonEmpty(cpath+".name", c.GetName()); err != nil {
				return nil, err
			}
			if c.GetWeight() == 0 {
				return nil, fmt.Errorf("%s.weight: 0, want at least 1", cpath)
			}
			t.Clusters = append(t.Clusters, runtime.WeightedCluster{Name: c.GetName(), Weight: c.GetWeight()})
		}
	default:
		return nil, fmt.Errorf("%s: no cluster or weighted_clusters", path)
	}
	return t, nil
}

// checkConfigSource accepts the ADS config sources of the subset.
func checkConfigSource(path string, cs *corev3.ConfigSource) error {
	if cs.GetAds() == nil && cs.GetSelf() == nil {
		return fmt.Errorf("%s: unsupported config source, want ads", path)
	}
	switch cs.GetResourceApiVersion() {
	case corev3.ApiVersion_AUTO, corev3.ApiVersion_V3:
		return nil
	}
	return fmt.Errorf("%s.resource_api_version: unsupported %v", path, cs.GetResourceApiVersion())
}

// parseSocketAddress reads a listener's TCP socket_address, an IP literal.
func parseSocketAddress(path string, a *corev3.Address) (netip.AddrPort, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, fmt.Errorf("%s: want socket_address", path)
	}
	if err := checkSocketAddress(path+".socket_address", sa); err != nil {
		return netip.AddrPort{}, err
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s.socket_address.address: %q is not an IP address", path, sa.GetAddress())
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())), nil
}

func checkSocketAddress(path string, sa *corev3.SocketAddress) error {
	switch {
	case sa.GetProtocol() != corev3.SocketAddress_TCP:
		return fmt.Errorf("%s.protocol: unsupported %v", path, sa.GetProtocol())
	case sa.GetNamedPort() != "":
		return fmt.Errorf("%s.named_port: unsupported", path)
	case sa.GetResolverName() != "":
		return fmt.Errorf("%s.resolver_name: unsupported", path)
	case sa.GetPortValue() > 65535:
		return fmt.Errorf("%s.port_value: %d out of range", path, sa.GetPortValue())
	}
	return nil
}
