package compile

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func tlsSocket(t testing.TB, dt *tlsv3.DownstreamTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, dt)}}
}

func secretRef(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }

// TestParseGatewayListener: Istio's gateway on 443 with an HTTPS SIMPLE
// server, a MUTUAL one and a PASSTHROUGH one, all told apart by SNI.
func TestParseGatewayListener(t *testing.T) {
	hcm := filter(t, "envoy.filters.network.http_connection_manager", rdsHCM(t, "https.443.simple"))
	mhcm := filter(t, "envoy.filters.network.http_connection_manager", rdsHCM(t, "https.443.mutual"))
	pass := filter(t, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{StatPrefix: "p",
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "outbound|443||db.example.com"}})
	l := listener("0.0.0.0_443", "127.0.0.1", 443, corev3.TrafficDirection_OUTBOUND)
	l.FilterChains = []*listenerv3.FilterChain{
		{Name: "simple", FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"Bookinfo.example.com"}},
			TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{secretRef("file-cert:/c.pem~/k.pem")},
				AlpnProtocols:                  []string{"h2", "http/1.1"},
				TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, CipherSuites: []string{"ECDHE-ECDSA-AES128-GCM-SHA256"}},
			}}),
			Filters: []*listenerv3.Filter{hcm}},
		{Name: "mutual", FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"*.secure.example.com"}},
			TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{
				RequireClientCertificate: wrapperspb.Bool(true),
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{secretRef("file-cert:/c.pem~/k.pem")},
					ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
						DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "client.example.com"}},
						}}, VerifyCertificateHash: []string{strings.Repeat("ab:", 31) + "ab"}},
						ValidationContextSdsSecretConfig: secretRef("file-root:/ca.pem"),
					}},
				}}),
			Filters: []*listenerv3.Filter{mhcm}},
		{Name: "passthrough", FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"db.example.com"}}, Filters: []*listenerv3.Filter{pass}},
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: tlsInspectorType}}}}
	l.ListenerFiltersTimeout = durationpb.New(0)
	l.ContinueOnListenerFiltersTimeout = true
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := ParseListener(l)
	if err != nil {
		t.Fatal(err)
	}
	h := func(rds string) *runtime.HTTPListener {
		return &runtime.HTTPListener{StatPrefix: "outbound_0.0.0.0_9080", RouteName: rds, WebSocket: true}
	}
	hash := make([]byte, 32)
	for i := range hash {
		hash[i] = 0xab
	}
	simple := &runtime.FilterChain{Name: "simple", Match: runtime.FilterChainMatch{ServerNames: []string{"bookinfo.example.com"}},
		TLS:  &runtime.DownstreamTLS{CertSecrets: []string{"file-cert:/c.pem~/k.pem"}, ALPN: []string{"h2", "http/1.1"}, MinVersion: 0x0303},
		Kind: runtime.ListenerHTTP, HTTP: h("https.443.simple")}
	want := &Listener{
		Runtime: &runtime.Listener{
			Name: "0.0.0.0_443", Address: netip.MustParseAddrPort("127.0.0.1:443"), Kind: runtime.ListenerHTTP, HTTP: simple.HTTP,
			FilterChains: []*runtime.FilterChain{
				simple,
				{Name: "mutual", Match: runtime.FilterChainMatch{ServerNames: []string{"*.secure.example.com"}},
					TLS: &runtime.DownstreamTLS{CertSecrets: []string{"file-cert:/c.pem~/k.pem"}, RootSecret: "file-root:/ca.pem", RequireClientCert: true,
						SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANDNS, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "client.example.com"}}},
						CertHashes:      [][]byte{hash}},
					Kind: runtime.ListenerHTTP, HTTP: h("https.443.mutual")},
				{Name: "passthrough", Match: runtime.FilterChainMatch{ServerNames: []string{"db.example.com"}}, Kind: runtime.ListenerTCP,
					TCP: &runtime.TCPListener{StatPrefix: "p", Clusters: []runtime.WeightedCluster{{Name: "outbound|443||db.example.com", Weight: 1}}}},
			},
			Inspect: runtime.ListenerFilters{TLSInspector: true, Timeout: -1, ContinueOnTimeout: true},
		},
		RDS: "https.443.simple", RouteNames: []string{"https.443.simple", "https.443.mutual"},
	}
	if diff := cmp.Diff(want, got, cmpRegexp); diff != "" {
		t.Errorf("ParseListener (-want +got):\n%s", diff)
	}
}

func TestParseFilterChainsRejects(t *testing.T) {
	hcm := func() *listenerv3.Filter {
		return filter(t, "envoy.filters.network.http_connection_manager", rdsHCM(t, "r"))
	}
	withChains := func(chains ...*listenerv3.FilterChain) *listenerv3.Listener {
		l := listener("l", "127.0.0.1", 443, corev3.TrafficDirection_INBOUND)
		l.FilterChains = chains
		return l
	}
	tests := []struct {
		name string
		in   *listenerv3.Listener
		want string
	}{
		{
			name: "same match twice",
			in: withChains(
				&listenerv3.FilterChain{FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"a", "b"}}, Filters: []*listenerv3.Filter{hcm()}},
				&listenerv3.FilterChain{FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"b", "a"}}, Filters: []*listenerv3.Filter{hcm()}}),
			want: `listener "l": filter_chains[1]: multiple filter chains with the same matching rules are defined (also filter_chains[0])`,
		},
		{
			name: "require client cert without roots",
			in: withChains(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcm()},
				TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true),
					CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{secretRef("default")}}})}),
			want: `listener "l": filter_chains[0].transport_socket.typed_config: require_client_certificate needs a validation context with trusted roots`,
		},
		{
			name: "no certificate",
			in: withChains(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcm()},
				TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}})}),
			want: `listener "l": filter_chains[0].transport_socket.typed_config.common_tls_context: no tls_certificates or tls_certificate_sds_secret_configs`,
		},
		{
			name: "tls 1.0",
			in: withChains(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcm()},
				TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{secretRef("default")},
					TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_0}}})}),
			want: `listener "l": filter_chains[0].transport_socket.typed_config.common_tls_context.tls_params.tls_minimum_protocol_version: unsupported TLSv1_0, want TLSv1_2 or TLSv1_3`,
		},
		{
			name: "unknown transport protocol",
			in:   withChains(&listenerv3.FilterChain{FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "quic"}, Filters: []*listenerv3.Filter{hcm()}}),
			want: `listener "l": filter_chains[0].filter_chain_match.transport_protocol: unsupported "quic"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseListener(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("ParseListener error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}
