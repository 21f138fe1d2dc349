package compile

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestParseListener(t *testing.T) {
	withHCM := func(name string, edit func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
		h := rdsHCM(t, "9080")
		edit(h)
		return listener(name, "127.0.30.1", 9080, corev3.TrafficDirection_OUTBOUND,
			filter(t, "envoy.filters.network.http_connection_manager", h))
	}
	httpWant := func(name string, edit func(*runtime.HTTPListener)) *Listener {
		h := &runtime.HTTPListener{StatPrefix: "outbound_0.0.0.0_9080", RouteName: "9080", WebSocket: true}
		edit(h)
		return &Listener{
			Runtime: &runtime.Listener{
				Name: name, Address: netip.MustParseAddrPort("127.0.30.1:9080"),
				Direction: runtime.Outbound, Kind: runtime.ListenerHTTP, HTTP: h,
			},
			RDS: "9080",
		}
	}
	tests := []struct {
		name string
		in   *listenerv3.Listener
		want *Listener
	}{
		{
			name: "http rds outbound",
			in:   httpListener(t, "127.0.30.1_9080", "127.0.30.1", 9080, "9080"),
			want: httpWant("127.0.30.1_9080", func(*runtime.HTTPListener) {}),
		},
		{
			name: "http proxy absolute url",
			in: withHCM("http_proxy", func(h *hcmv3.HttpConnectionManager) {
				h.HttpProtocolOptions = &corev3.Http1ProtocolOptions{AllowAbsoluteUrl: wrapperspb.Bool(true)}
			}),
			want: httpWant("http_proxy", func(h *runtime.HTTPListener) { h.AbsoluteURL = true }),
		},
		{
			name: "websocket disabled and optional unknown filter skipped",
			in: withHCM("l", func(h *hcmv3.HttpConnectionManager) {
				h.UpgradeConfigs[0].Enabled = wrapperspb.Bool(false)
				h.HttpFilters = append([]*hcmv3.HttpFilter{{
					Name: "istio.stats", IsOptional: true,
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/stats.PluginConfig"}},
				}}, h.HttpFilters...)
			}),
			want: httpWant("l", func(h *runtime.HTTPListener) { h.WebSocket = false }),
		},
		{
			name: "inline route_config",
			in: withHCM("gw", func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: simpleRoute("inline", "*", "c")}
			}),
			want: func() *Listener {
				l := httpWant("gw", func(h *runtime.HTTPListener) { h.RouteName = "inline:gw" })
				l.RDS = ""
				l.Inline = &runtime.RouteTable{Name: "inline", VirtualHosts: []*runtime.VirtualHost{{
					Name: "*", Domains: []string{"*"},
					Routes: []*runtime.Route{{
						Match:   runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true},
						Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}}},
					}},
				}}}
				return l
			}(),
		},
		{
			name: "tcp inbound with tls_inspector",
			in: func() *listenerv3.Listener {
				l := tcpListener(t, "inbound_127.0.10.1_9080", "127.0.10.1", 9080, "inbound|9080||")
				l.ListenerFilters = []*listenerv3.ListenerFilter{{
					Name:       "envoy.filters.listener.tls_inspector",
					ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
				}}
				return l
			}(),
			want: &Listener{Runtime: &runtime.Listener{
				Name: "inbound_127.0.10.1_9080", Address: netip.MustParseAddrPort("127.0.10.1:9080"),
				Direction: runtime.Inbound, Kind: runtime.ListenerTCP, Inspect: runtime.ListenerFilters{TLSInspector: true},
				TCP: &runtime.TCPListener{StatPrefix: "inbound|9080||", Clusters: []runtime.WeightedCluster{{Name: "inbound|9080||", Weight: 1}}},
			}},
		},
		{
			name: "tcp weighted clusters",
			in: listener("0.0.0.0_3306", "0.0.0.0", 3306, corev3.TrafficDirection_OUTBOUND,
				filter(t, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{
					StatPrefix: "db",
					ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
						Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 80}, {Name: "b", Weight: 20}},
					}},
				})),
			want: &Listener{Runtime: &runtime.Listener{
				Name: "0.0.0.0_3306", Address: netip.MustParseAddrPort("0.0.0.0:3306"),
				Direction: runtime.Outbound, Kind: runtime.ListenerTCP,
				TCP: &runtime.TCPListener{StatPrefix: "db", Clusters: []runtime.WeightedCluster{{Name: "a", Weight: 80}, {Name: "b", Weight: 20}}},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.in.Validate(); err != nil {
				t.Fatalf("test input does not validate: %v", err)
			}
			got, err := ParseListener(tc.in)
			if err != nil {
				t.Fatalf("ParseListener: %v", err)
			}
			if diff := cmp.Diff(withChain(tc.want), got, cmpRegexp); diff != "" {
				t.Errorf("ParseListener (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseListenerRejects(t *testing.T) {
	base := func() *listenerv3.Listener { return httpListener(t, "l", "127.0.30.1", 9080, "9080") }
	hcmEdit := func(edit func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
		h := rdsHCM(t, "9080")
		edit(h)
		return listener("l", "127.0.30.1", 9080, corev3.TrafficDirection_OUTBOUND,
			filter(t, "envoy.filters.network.http_connection_manager", h))
	}
	unknown := func(name, typ string) *listenerv3.Filter {
		return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typ}}}
	}
	tests := []struct {
		name string
		in   *listenerv3.Listener
		want string // the whole error
	}{
		{
			name: "unknown network filter",
			in: listener("inbound_127.0.10.1_9080", "127.0.10.1", 9080, corev3.TrafficDirection_INBOUND,
				unknown("envoy.filters.network.redis_proxy", "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy")),
			want: `listener "inbound_127.0.10.1_9080": filter_chains[0].filters[0]: unsupported filter "envoy.filters.network.redis_proxy"`,
		},
		{
			name: "filter before terminal",
			in: func() *listenerv3.Listener {
				l := base()
				fc := l.FilterChains[0]
				fc.Filters = append([]*listenerv3.Filter{unknown("envoy.filters.network.local_ratelimit", "type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit")}, fc.Filters...)
				return l
			}(),
			want: `listener "l": filter_chains[0].filters[0]: unsupported filter "envoy.filters.network.local_ratelimit"`,
		},
		{
			name: "terminal not last",
			in: func() *listenerv3.Listener {
				l := base()
				l.FilterChains[0].Filters = append(l.FilterChains[0].Filters, tcpListener(t, "x", "127.0.0.1", 1, "c").FilterChains[0].Filters[0])
				return l
			}(),
			want: `listener "l": filter_chains[0].filters[0]: terminal filter "envoy.filters.network.http_connection_manager" must be last`,
		},
		{
			name: "tls transport socket",
			in: func() *listenerv3.Listener {
				l := base()
				l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
				return l
			}(),
			want: `listener "l": filter_chains[0].transport_socket: unsupported transport socket "envoy.transport_sockets.tls"`, // no typed_config
		},
		{
			name: "two filter chains",
			in: func() *listenerv3.Listener {
				l := base()
				l.FilterChains = append(l.FilterChains, l.FilterChains[0])
				return l
			}(),
			want: `listener "l": filter_chains[1]: multiple filter chains with the same matching rules are defined (also filter_chains[0])`,
		},
		{
			name: "filter chain match",
			in: func() *listenerv3.Listener {
				l := base()
				l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{SourcePorts: []uint32{1}}
				return l
			}(),
			want: `listener "l": filter_chains[0].filter_chain_match.source_ports: unsupported`,
		},
		{
			name: "hostname address",
			in: func() *listenerv3.Listener {
				l := base()
				l.Address = sockAddr("localhost", 9080)
				return l
			}(),
			want: `listener "l": address.socket_address.address: "localhost" is not an IP address`,
		},
		{
			name: "original_dst listener filter",
			in: func() *listenerv3.Listener {
				l := base()
				l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst"}}
				return l
			}(),
			want: `listener "l": listener_filters[0]: unsupported listener filter "envoy.filters.listener.original_dst"`,
		},
		{
			name: "api listener",
			in: func() *listenerv3.Listener {
				l := base()
				l.ApiListener = &listenerv3.ApiListener{}
				return l
			}(),
			want: `listener "l": api_listener: unsupported (proxyless gRPC only)`,
		},
		{
			name: "unknown http filter",
			in: hcmEdit(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}}}}, h.HttpFilters...)
			}),
			want: `listener "l": filter_chains[0].filters[0].typed_config.http_filters[0]: unsupported http filter "envoy.filters.http.lua" (type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua)`,
		},
		{
			name: "no router",
			in:   hcmEdit(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = nil }),
			want: `listener "l": filter_chains[0].filters[0].typed_config.http_filters: no envoy.filters.http.router`,
		},
		{
			name: "codec http1",
			in:   hcmEdit(func(h *hcmv3.HttpConnectionManager) { h.CodecType = hcmv3.HttpConnectionManager_HTTP1 }),
			want: `listener "l": filter_chains[0].filters[0].typed_config.codec_type: unsupported HTTP1, want AUTO`,
		},
		{
			name: "connect upgrade",
			in:   hcmEdit(func(h *hcmv3.HttpConnectionManager) { h.UpgradeConfigs[0].UpgradeType = "CONNECT" }),
			want: `listener "l": filter_chains[0].filters[0].typed_config.upgrade_configs[0].upgrade_type: unsupported "CONNECT"`,
		},
		{
			name: "rds not ads",
			in: hcmEdit(func(h *hcmv3.HttpConnectionManager) {
				h.GetRds().ConfigSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/etc/routes.yaml"}}
			}),
			want: `listener "l": filter_chains[0].filters[0].typed_config.rds.config_source: unsupported config source, want ads`,
		},
		{
			name: "scoped routes",
			in: hcmEdit(func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{}}
			}),
			want: `listener "l": filter_chains[0].filters[0].typed_config.scoped_routes: unsupported`,
		},
		{
			name: "inline route config rejected field",
			in: hcmEdit(func(h *hcmv3.HttpConnectionManager) {
				rc := simpleRoute("r", "*", "c")
				rc.VirtualHosts[0].RetryPolicy = &routev3.RetryPolicy{}
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			}),
			want: `listener "l": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].retry_policy: unsupported on the virtual host`,
		},
		{
			name: "tcp zero weight",
			in: listener("t", "127.0.0.1", 1, corev3.TrafficDirection_OUTBOUND,
				filter(t, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{
					StatPrefix: "t",
					ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
						Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a"}, {Name: "b"}},
					}},
				})),
			want: `listener "t": filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].weight: 0, want at least 1`,
		},
		{
			name: "tcp tunneling",
			in: listener("t", "127.0.0.1", 1, corev3.TrafficDirection_OUTBOUND,
				filter(t, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{
					StatPrefix: "t", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"},
					TunnelingConfig: &tcpv3.TcpProxy_TunnelingConfig{Hostname: "h"},
				})),
			want: `listener "t": filter_chains[0].filters[0].typed_config.tunneling_config: unsupported`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseListener(tc.in)
			if err == nil {
				t.Fatalf("ParseListener: no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("ParseListener error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParseListenerBadTypedConfig(t *testing.T) {
	l := listener("l", "127.0.0.1", 80, corev3.TrafficDirection_OUTBOUND, &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: hcmType, Value: []byte{0xff, 0xff}}},
	})
	_, err := ParseListener(l)
	if err == nil || !strings.HasPrefix(err.Error(), `listener "l": filter_chains[0].filters[0].typed_config: `) {
		t.Errorf("ParseListener error = %v, want a typed_config error", err)
	}
}

// withChain completes a single-chain want: the chain repeats Kind/HTTP/TCP
// and an inline route table is also listed under its key.
func withChain(l *Listener) *Listener {
	rl := l.Runtime
	if rl.FilterChains == nil {
		rl.FilterChains = []*runtime.FilterChain{{Kind: rl.Kind, HTTP: rl.HTTP, TCP: rl.TCP}}
	}
	if l.RDS != "" && l.RouteNames == nil {
		l.RouteNames = []string{l.RDS}
	}
	if l.Inline != nil && l.Inlines == nil {
		l.Inlines = map[string]*runtime.RouteTable{rl.HTTP.RouteName: l.Inline}
	}
	return l
}
