package compile

import (
	"fmt"
	"net/netip"

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
	// RDS names the RouteConfiguration the listener's http_connection_manager
	// subscribes to; empty for tcp_proxy and for an inline route_config.
	RDS string
	// Inline is an inline route_config, published in Config.Routes under
	// InlineRouteKey(listener name), which Runtime.HTTP.RouteName holds.
	Inline *runtime.RouteTable
}

// InlineRouteKey is the Config.Routes key of listener's inline route_config.
// The "inline:" prefix cannot collide with an RDS name Trellis emits (port
// numbers, "inbound|...", "http.PORT", "http_proxy").
func InlineRouteKey(listener string) string { return "inline:" + listener }

// listener filters that only feed filter-chain matching; with the single
// filter chain of the subset they change nothing, so they are accepted.
var harmlessListenerFilters = map[string]bool{
	"type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector":   true,
	"type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector": true,
}

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
	case l.GetDefaultFilterChain() != nil:
		return nil, fmt.Errorf("default_filter_chain: unsupported")
	case l.GetFilterChainMatcher() != nil:
		return nil, fmt.Errorf("filter_chain_matcher: unsupported")
	case l.GetFcdsConfig() != nil:
		return nil, fmt.Errorf("fcds_config: unsupported")
	case l.GetBindToPort() != nil && !l.GetBindToPort().GetValue():
		return nil, fmt.Errorf("bind_to_port: false is unsupported")
	}
	for i, f := range l.GetListenerFilters() {
		if !harmlessListenerFilters[f.GetTypedConfig().GetTypeUrl()] {
			return nil, fmt.Errorf("listener_filters[%d]: unsupported listener filter %q", i, f.GetName())
		}
	}
	addr, err := parseSocketAddress("address", l.GetAddress())
	if err != nil {
		return nil, err
	}
	rl := &runtime.Listener{Name: l.GetName(), Address: addr}
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		rl.Direction = runtime.Inbound
	case corev3.TrafficDirection_OUTBOUND, corev3.TrafficDirection_UNSPECIFIED:
		rl.Direction = runtime.Outbound
	default:
		return nil, fmt.Errorf("traffic_direction: unsupported %v", l.GetTrafficDirection())
	}
	if n := len(l.GetFilterChains()); n != 1 {
		return nil, fmt.Errorf("filter_chains: want exactly 1 filter chain, got %d", n)
	}
	fc := l.GetFilterChains()[0]
	switch {
	case fc.GetFilterChainMatch() != nil:
		return nil, fmt.Errorf("filter_chains[0].filter_chain_match: unsupported")
	case fc.GetTransportSocket() != nil:
		return nil, fmt.Errorf("filter_chains[0].transport_socket: unsupported transport socket %q", fc.GetTransportSocket().GetName())
	case fc.GetUseProxyProto().GetValue():
		return nil, fmt.Errorf("filter_chains[0].use_proxy_proto: unsupported")
	}
	out := &Listener{Runtime: rl}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, fmt.Errorf("filter_chains[0].filters: empty, want http_connection_manager or tcp_proxy")
	}
	for i, f := range filters {
		path := fmt.Sprintf("filter_chains[0].filters[%d]", i)
		if f.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("%s.config_discovery: unsupported", path)
		}
		terminal := f.GetTypedConfig().GetTypeUrl() == hcmType || f.GetTypedConfig().GetTypeUrl() == tcpProxyType
		if !terminal {
			return nil, fmt.Errorf("%s: unsupported filter %q", path, f.GetName())
		}
		if i != len(filters)-1 {
			return nil, fmt.Errorf("%s: terminal filter %q must be last", path, f.GetName())
		}
		switch f.GetTypedConfig().GetTypeUrl() {
		case hcmType:
			var hcm hcmv3.HttpConnectionManager
			if err := unmarshalTyped(f.GetTypedConfig(), hcmType, &hcm); err != nil {
				return nil, fmt.Errorf("%s.%w", path, err)
			}
			if err := parseHCM(path+".typed_config", &hcm, l.GetName(), out); err != nil {
				return nil, err
			}
		case tcpProxyType:
			var tp tcpv3.TcpProxy
			if err := unmarshalTyped(f.GetTypedConfig(), tcpProxyType, &tp); err != nil {
				return nil, fmt.Errorf("%s.%w", path, err)
			}
			t, err := parseTCPProxy(path+".typed_config", &tp)
			if err != nil {
				return nil, err
			}
			rl.Kind, rl.TCP = runtime.ListenerTCP, t
		}
	}
	return out, nil
}

func parseHCM(path string, hcm *hcmv3.HttpConnectionManager, listener string, out *Listener) error {
	if hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return fmt.Errorf("%s.codec_type: unsupported %v, want AUTO", path, hcm.GetCodecType())
	}
	h := &runtime.HTTPListener{
		StatPrefix:  hcm.GetStatPrefix(),
		AbsoluteURL: hcm.GetHttpProtocolOptions().GetAllowAbsoluteUrl().GetValue(),
	}
	switch {
	case hcm.GetRds() != nil:
		if err := checkConfigSource(path+".rds.config_source", hcm.GetRds().GetConfigSource()); err != nil {
			return err
		}
		h.RouteName = hcm.GetRds().GetRouteConfigName()
		out.RDS = h.RouteName
	case hcm.GetRouteConfig() != nil:
		rt, err := parseRouteConfiguration(path+".route_config.", hcm.GetRouteConfig())
		if err != nil {
			return err
		}
		h.RouteName = InlineRouteKey(listener)
		out.Inline = rt
	case hcm.GetScopedRoutes() != nil:
		return fmt.Errorf("%s.scoped_routes: unsupported", path)
	default:
		return fmt.Errorf("%s: no route_specifier", path)
	}
	if hcm.GetHttp3ProtocolOptions() != nil {
		return fmt.Errorf("%s.http3_protocol_options: unsupported", path)
	}
	if err := parseHTTPFilters(path+".http_filters", hcm.GetHttpFilters()); err != nil {
		return err
	}
	for i, u := range hcm.GetUpgradeConfigs() {
		upath := fmt.Sprintf("%s.upgrade_configs[%d]", path, i)
		if len(u.GetFilters()) > 0 {
			return fmt.Errorf("%s.filters: unsupported", upath)
		}
		switch u.GetUpgradeType() {
		case "websocket", "WebSocket", "Websocket":
			h.WebSocket = u.GetEnabled() == nil || u.GetEnabled().GetValue()
		default:
			return fmt.Errorf("%s.upgrade_type: unsupported %q", upath, u.GetUpgradeType())
		}
	}
	out.Runtime.Kind, out.Runtime.HTTP = runtime.ListenerHTTP, h
	return nil
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
	t := &runtime.TCPListener{StatPrefix: tp.GetStatPrefix()}
	switch {
	case tp.GetCluster() != "":
		t.Clusters = []runtime.WeightedCluster{{Name: tp.GetCluster(), Weight: 1}}
	case tp.GetWeightedClusters() != nil:
		var total uint64
		for _, c := range tp.GetWeightedClusters().GetClusters() {
			t.Clusters = append(t.Clusters, runtime.WeightedCluster{Name: c.GetName(), Weight: c.GetWeight()})
			total += uint64(c.GetWeight())
		}
		if total == 0 {
			return nil, fmt.Errorf("%s.weighted_clusters: weights sum to 0", path)
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
