package compile

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func sds(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }

// upstreamTLSSocket wraps ctx in a TLS transport socket.
func upstreamTLSSocket(t testing.TB, ctx *tlsv3.CommonTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: ctx})}}
}

// istioMTLS is the UpstreamTlsContext Istio generates for ISTIO_MUTUAL.
func istioMTLS(t testing.TB, sni string) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{
			Sni: sni,
			CommonTlsContext: &tlsv3.CommonTlsContext{
				AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
				ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
					CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
						DefaultValidationContext: &tlsv3.CertificateValidationContext{
							MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
								SanType: tlsv3.SubjectAltNameMatcher_URI,
								Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/default/sa/reviews"}},
							}},
						},
						ValidationContextSdsSecretConfig: sds("ROOTCA"),
					},
				},
			},
		}),
	}}
}

func TestParseClusterUpstream(t *testing.T) {
	const name = "outbound|9080||reviews.default.svc.cluster.local"
	c := edsCluster(name)
	c.LbPolicy = clusterv3.Cluster_RING_HASH
	c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(2048),
	}}
	c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{
		HealthyPanicThreshold:   &typev3.Percent{Value: 0},
		LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}},
	}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
		{MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(2), MaxRequests: wrapperspb.UInt32(3), MaxRetries: wrapperspb.UInt32(4), TrackRemaining: true},
		{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(99)},
	}}
	c.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:          wrapperspb.UInt32(3),
		Interval:                 durationpb.New(time.Second),
		BaseEjectionTime:         durationpb.New(2 * time.Second),
		MaxEjectionPercent:       wrapperspb.UInt32(50),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
	}
	c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{
		KeepaliveTime: wrapperspb.UInt32(300), KeepaliveInterval: wrapperspb.UInt32(75), KeepaliveProbes: wrapperspb.UInt32(9),
	}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(time.Minute), MaxRequestsPerConnection: wrapperspb.UInt32(10)},
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            "tlsMode-istio",
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: istioMTLS(t, "outbound_.9080_._.reviews.default.svc.cluster.local"),
		},
		{
			Name:  "tlsMode-disabled",
			Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(t, &rawbufferv3.RawBuffer{}),
			}},
		},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("test input does not validate: %v", err)
	}
	got, err := ParseCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	want := &runtime.Cluster{
		Name: name, ConnectTimeout: 10 * time.Second, LB: runtime.RingHash, Protocol: runtime.HTTP2,
		LBConfig:        runtime.LBConfig{RingMin: 2048, PanicThreshold: runtime.PanicDisabled, LocalityWeighted: true},
		CircuitBreakers: runtime.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 2, MaxRequests: 3, MaxRetries: 4},
		Pool: runtime.ConnectionPool{
			MaxRequestsPerConnection: 10, IdleTimeout: time.Minute,
			KeepAlive: &runtime.TCPKeepAlive{Probes: 9, Time: 300 * time.Second, Interval: 75 * time.Second},
		},
		Outlier: &runtime.OutlierDetection{
			Consecutive5xx: 3, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
			EnforcingConsecutive5xx: 100, EnforcingConsecutiveGatewayFailure: 0, EnforcingConsecutiveLocalOriginFailure: 100,
			Interval: time.Second, BaseEjectionTime: 2 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 50,
		},
		TLSMatches: []runtime.TransportSocketMatch{
			{Name: "tlsMode-istio", Match: map[string]string{"tlsMode": "istio"}, TLS: &runtime.UpstreamTLS{
				SNI: "outbound_.9080_._.reviews.default.svc.cluster.local", ALPN: []string{"istio-peer-exchange", "istio"},
				CertSecret: "default", RootSecret: "ROOTCA",
				SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Value: "spiffe://cluster.local/ns/default/sa/reviews"}}},
			}},
			{Name: "tlsMode-disabled", Match: map[string]string{}},
		},
	}
	if diff := cmp.Diff(&Cluster{Runtime: want, EDS: name}, got, cmpRegexp); diff != "" {
		t.Errorf("ParseCluster (-want +got):\n%s", diff)
	}
	// Istio's two matches are the same maps in every cluster (issue 5).
	again, err := ParseCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again.Runtime.TLSMatches {
		if !sameMap(got.Runtime.TLSMatches[i].Match, again.Runtime.TLSMatches[i].Match) {
			t.Errorf("transport_socket_matches[%d]: two parses made separate Match maps", i)
		}
	}
}

func TestParseClusterUpstreamRejects(t *testing.T) {
	edit := func(f func(*clusterv3.Cluster)) *clusterv3.Cluster { c := edsCluster("c"); f(c); return c }
	tests := []struct {
		name string
		in   *clusterv3.Cluster
		want string
	}{
		{
			name: "maglev table not prime",
			in: edit(func(c *clusterv3.Cluster) {
				c.LbPolicy = clusterv3.Cluster_MAGLEV
				c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(65536)}}
			}),
			want: `cluster "c": maglev_lb_config.table_size: 65536 is not a prime`,
		},
		{
			name: "success rate ejection",
			in: edit(func(c *clusterv3.Cluster) {
				c.OutlierDetection = &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(100)}
			}),
			want: `cluster "c": outlier_detection.enforcing_success_rate: success-rate ejection is unsupported`,
		},
		{
			name: "socket match on a number",
			in: edit(func(c *clusterv3.Cluster) {
				c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{
					Name: "n", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(1)}},
				}}
			}),
			want: `cluster "c": transport_socket_matches[0].match["x"]: want a string value`,
		},
		{
			name: "two client certificates",
			in: edit(func(c *clusterv3.Cluster) {
				c.TransportSocket = upstreamTLSSocket(t, &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("a"), sds("b")}})
			}),
			want: `cluster "c": transport_socket.typed_config.common_tls_context: at most one client certificate is supported`,
		},
		{
			name: "certificate pin on an upstream",
			in: edit(func(c *clusterv3.Cluster) {
				c.TransportSocket = upstreamTLSSocket(t, &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
					ValidationContext: &tlsv3.CertificateValidationContext{
						TrustedCa:             &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/roots.pem"}},
						VerifyCertificateSpki: []string{"NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="},
					}}})
			}),
			want: `cluster "c": transport_socket.typed_config.common_tls_context.validation_context.verify_certificate_spki: unsupported for upstreams`,
		},
		{
			name: "SAN matchers without roots",
			in: edit(func(c *clusterv3.Cluster) {
				c.TransportSocket = upstreamTLSSocket(t, &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
					ValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a.example"}}}},
					}}})
			}),
			want: `cluster "c": transport_socket.typed_config.common_tls_context: subject alt name matchers need trusted roots`,
		},
		{
			name: "zero circuit breaker",
			in: edit(func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(0)}}}
			}),
			want: `cluster "c": circuit_breakers.thresholds[0].max_requests: 0 is unsupported`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCluster(tc.in)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParseEndpointsSocketMatch(t *testing.T) {
	e := ep("127.0.10.3", 9080)
	e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		socketMatchKey: {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
		"istio":        {Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue("reviews-v1")}},
	}}
	got, err := ParseEndpoints(cla("c", e))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tlsMode": "istio"}
	if diff := cmp.Diff(want, got[0].SocketMatch); diff != "" {
		t.Errorf("SocketMatch (-want +got):\n%s", diff)
	}
	_ = endpointv3.ClusterLoadAssignment{}
}

func TestParseRouteUpstreamPolicies(t *testing.T) {
	a := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
		HashPolicy: []*routev3.RouteAction_HashPolicy{
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "X-User"}}},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "session", Ttl: durationpb.New(time.Hour), Path: "/"}}, Terminal: true},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "u"}}},
		},
		RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{
			{Cluster: "mirror", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50, Denominator: typev3.FractionalPercent_HUNDRED}}},
			{Cluster: "all"},
		},
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:      "5xx,gateway-error",
			NumRetries:   wrapperspb.UInt32(3),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond), MaxInterval: durationpb.New(50 * time.Millisecond)},
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
				Name: "envoy.retry_host_predicates.previous_hosts", ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushostsv3.PreviousHostsPredicate{})},
			}},
			HostSelectionRetryMaxAttempts: 5,
			RetryPriority: &routev3.RetryPolicy_RetryPriority{
				Name:       "envoy.retry_priorities.previous_priorities",
				ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: mustAny(t, &previousprioritiesv3.PreviousPrioritiesConfig{UpdateFrequency: 2})},
			},
		},
	}
	rc := oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: a}})
	if err := rc.Validate(); err != nil {
		t.Fatalf("test input does not validate: %v", err)
	}
	got, err := ParseRouteConfiguration(rc)
	if err != nil {
		t.Fatal(err)
	}
	f := got.VirtualHosts[0].Routes[0].Forward
	want := &runtime.ForwardAction{
		Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}},
		Retry: &runtime.RetryPolicy{
			Attempts: 3, RetryOn: []string{"5xx", "gateway-error"},
			BackOff:       runtime.RetryBackOff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
			PreviousHosts: true, HostSelectionAttempts: 5, PreviousPriorities: true,
		},
		HashPolicy: []runtime.HashPolicy{
			{Kind: runtime.HashHeader, Name: "x-user"},
			{Kind: runtime.HashCookie, Name: "session", CookieGenerate: true, CookieTTL: time.Hour, CookiePath: "/", Terminal: true},
			{Kind: runtime.HashSourceIP},
			{Kind: runtime.HashQuery, Name: "u"},
		},
		Mirrors: []runtime.MirrorPolicy{{Cluster: "mirror", PerMillion: 500_000}, {Cluster: "all", PerMillion: 1_000_000}},
	}
	if diff := cmp.Diff(want, f, cmpRegexp); diff != "" {
		t.Errorf("ForwardAction (-want +got):\n%s", diff)
	}
}
