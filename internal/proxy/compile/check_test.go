package compile

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestParseRejectsWhatValidateRejects covers the fields the proxy reads whose
// only check was the generated protoc-gen-validate Validate, which the
// proxy no longer links (issue 5): each input fails Validate, and Parse must
// reject it naming the resource and field.
func TestParseRejectsWhatValidateRejects(t *testing.T) {
	cluster := func(edit func(*clusterv3.Cluster)) proto.Message {
		c := staticCluster("c", "10.0.0.1", 80)
		edit(c)
		return c
	}
	endpoints := func(edit func(*endpointv3.ClusterLoadAssignment)) proto.Message {
		c := cla("e", ep("10.0.0.1", 80))
		edit(c)
		return c
	}
	route := func(edit func(*routev3.Route)) proto.Message {
		rc := simpleRoute("r", "a.example", "c")
		edit(rc.VirtualHosts[0].Routes[0])
		return rc
	}
	action := func(edit func(*routev3.RouteAction)) proto.Message {
		return route(func(r *routev3.Route) { edit(r.GetRoute()) })
	}
	hcmListener := func(h *hcmv3.HttpConnectionManager) proto.Message {
		return listener("l", "127.0.0.1", 80, corev3.TrafficDirection_OUTBOUND, filter(t, "envoy.filters.network.http_connection_manager", h))
	}
	hcm := func(edit func(*hcmv3.HttpConnectionManager)) proto.Message {
		h := rdsHCM(t, "9080")
		edit(h)
		return hcmListener(h)
	}
	faultFilter := func(f *faultv3.HTTPFault) func(*hcmv3.HttpConnectionManager) {
		return func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, f)}}}, h.HttpFilters...)
		}
	}
	upstreamTLS := func(ut *tlsv3.UpstreamTlsContext) proto.Message {
		return cluster(func(c *clusterv3.Cluster) {
			c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ut)}}
		})
	}
	sniTLS := &tlsv3.UpstreamTlsContext{Sni: string(make([]byte, 256))}
	sdsTLS := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{}}}}
	combinedTLS := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{}}}}}
	abort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 600}}}
	delay := &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(0)}}}
	noPrefixHCM := rdsHCM(t, "9080")
	noPrefixHCM.StatPrefix = ""
	noPrefixTCP := &tcpv3.TcpProxy{ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}}
	noNameTCP := &tcpv3.TcpProxy{StatPrefix: "t", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
		Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Weight: 1}}}}}
	unnamedFilter := rdsHCM(t, "9080")
	faultFilter(&faultv3.HTTPFault{})(unnamedFilter)
	unnamedFilter.HttpFilters[0].Name = ""
	// Cases whose bad field sits in a typed_config: Validate of the outer
	// resource does not look inside an Any, so the inner one is checked.
	typedCases := map[string]proto.Message{
		"upstream sni too long": sniTLS, "upstream sds without name": sdsTLS, "upstream combined without sds": combinedTLS,
		"fault abort status": abort, "fault delay zero": delay, "hcm without stat_prefix": noPrefixHCM,
		"http filter without name": unnamedFilter, "tcp proxy without stat_prefix": noPrefixTCP, "tcp weighted cluster without name": noNameTCP,
	}
	header := func(k, v string) []*corev3.HeaderValueOption {
		return []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: k, Value: v}}}
	}
	tests := []struct {
		name string
		in   proto.Message
		want string
	}{
		{"cluster connect_timeout zero", cluster(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(0) }),
			`cluster "c": connect_timeout: 0s must be positive`},
		{"cluster choice_count", cluster(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(1)}}
		}), `cluster "c": least_request_lb_config.choice_count: 1, want at least 2`},
		{"cluster maglev table too big", cluster(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(5000017)}}
		}), `cluster "c": maglev_lb_config.table_size: 5000017 exceeds 5000011`},
		{"cluster panic threshold", cluster(func(c *clusterv3.Cluster) {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 101}}
		}), `cluster "c": common_lb_config.healthy_panic_threshold.value: 101 out of [0, 100]`},
		{"outlier interval zero", cluster(func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{Interval: durationpb.New(0)}
		}), `cluster "c": outlier_detection.interval: 0s must be positive`},
		{"outlier max ejection percent", cluster(func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(101)}
		}), `cluster "c": outlier_detection.max_ejection_percent: 101 exceeds 100`},
		{"socket match without name", cluster(func(c *clusterv3.Cluster) {
			c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{}}
		}), `cluster "c": transport_socket_matches[0].name: empty`},
		{"upstream sni too long", upstreamTLS(sniTLS),
			`cluster "c": transport_socket.typed_config.sni: 256 bytes exceeds 255`},
		{"upstream sds without name", upstreamTLS(sdsTLS),
			`cluster "c": transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: empty`},
		{"upstream combined without sds", upstreamTLS(combinedTLS),
			`cluster "c": transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config: required`},
		{"endpoint weight zero", endpoints(func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}), `endpoints "e": endpoints[0].lb_endpoints[0].load_balancing_weight: 0, want at least 1`},
		{"locality weight zero", endpoints(func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}), `endpoints "e": endpoints[0].load_balancing_weight: 0, want at least 1`},
		{"locality priority", endpoints(func(c *endpointv3.ClusterLoadAssignment) { c.Endpoints[0].Priority = 129 }),
			`endpoints "e": endpoints[0].priority: 129 exceeds 128`},
		{"endpoint empty address", endpoints(func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].GetEndpoint().Address = sockAddr("", 80)
		}), `endpoints "e": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: empty`},
		{"virtual host without name", func() proto.Message {
			rc := simpleRoute("r", "a.example", "c")
			rc.VirtualHosts[0].Name = ""
			return rc
		}(), `route "r": virtual_hosts[0].name: empty`},
		{"virtual host without domains", func() proto.Message {
			rc := simpleRoute("r", "a.example", "c")
			rc.VirtualHosts[0].Domains = nil
			return rc
		}(), `route "r": virtual_hosts[0].domains: empty`},
		{"route cluster empty", action(func(a *routev3.RouteAction) {
			a.ClusterSpecifier = &routev3.RouteAction_Cluster{}
		}), `route "r": virtual_hosts[0].routes[0].route.cluster: empty`},
		{"prefix rewrite with CRLF", action(func(a *routev3.RouteAction) { a.PrefixRewrite = "/a\r\nx: y" }),
			`route "r": virtual_hosts[0].routes[0].route.prefix_rewrite: "/a\r\nx: y": NUL, CR or LF at byte 2`},
		{"retry back_off without base", action(func(a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryBackOff: &routev3.RetryPolicy_RetryBackOff{MaxInterval: durationpb.New(time.Second)}}
		}), `route "r": virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.base_interval: required`},
		{"hash header empty", action(func(a *routev3.RouteAction) {
			a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{}}}}
		}), `route "r": virtual_hosts[0].routes[0].route.hash_policy[0].header.header_name: empty`},
		{"header matcher without name", route(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
		}), `route "r": virtual_hosts[0].routes[0].match.headers[0].name: empty`},
		{"string match empty prefix", route(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{}}}}}
		}), `route "r": virtual_hosts[0].routes[0].match.headers[0].string_match.prefix: empty`},
		{"empty safe regex", route(func(r *routev3.Route) {
			r.Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{}}
		}), `route "r": virtual_hosts[0].routes[0].match.safe_regex.regex: empty`},
		{"query parameter without name", route(func(r *routev3.Route) {
			r.Match.QueryParameters = []*routev3.QueryParameterMatcher{{QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}
		}), `route "r": virtual_hosts[0].routes[0].match.query_parameters[0].name: empty`},
		{"header to add without key", route(func(r *routev3.Route) { r.RequestHeadersToAdd = header("", "v") }),
			`route "r": virtual_hosts[0].routes[0].request_headers_to_add[0].header.key: empty`},
		{"header value with LF", route(func(r *routev3.Route) { r.ResponseHeadersToAdd = header("k", "a\nb") }),
			`route "r": virtual_hosts[0].routes[0].response_headers_to_add[0].header.value: "a\nb": NUL, CR or LF at byte 1`},
		{"header to remove empty", route(func(r *routev3.Route) { r.RequestHeadersToRemove = []string{""} }),
			`route "r": virtual_hosts[0].routes[0].request_headers_to_remove[0]: empty`},
		{"direct response status", route(func(r *routev3.Route) {
			r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 99}}
		}), `route "r": virtual_hosts[0].routes[0].direct_response.status: 99 out of [200, 600)`},
		{"hcm without stat_prefix", hcmListener(noPrefixHCM),
			`listener "l": filter_chains[0].filters[0].typed_config.stat_prefix: empty`},
		{"http filter without name", hcmListener(unnamedFilter), `listener "l": filter_chains[0].filters[0].typed_config.http_filters[0].name: empty`},
		{"fault abort status", hcm(faultFilter(abort)),
			`listener "l": filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.abort.http_status: 600 out of [200, 600)`},
		{"fault delay zero", hcm(faultFilter(delay)),
			`listener "l": filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.delay.fixed_delay: 0s must be positive`},
		{"tcp proxy without stat_prefix", listener("t", "127.0.0.1", 1, corev3.TrafficDirection_OUTBOUND,
			filter(t, "envoy.filters.network.tcp_proxy", noPrefixTCP)),
			`listener "t": filter_chains[0].filters[0].typed_config.stat_prefix: empty`},
		{"tcp weighted cluster without name", listener("t", "127.0.0.1", 1, corev3.TrafficDirection_OUTBOUND,
			filter(t, "envoy.filters.network.tcp_proxy", noNameTCP)),
			`listener "t": filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].name: empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.in
			if inner, ok := typedCases[tc.name]; ok {
				v = inner
			}
			if err := v.(interface{ Validate() error }).Validate(); err == nil {
				t.Fatal("Validate accepts the input; the case must be one protoc-gen-validate rejects")
			}
			var err error
			switch m := tc.in.(type) {
			case *clusterv3.Cluster:
				_, err = ParseCluster(m)
			case *endpointv3.ClusterLoadAssignment:
				_, err = ParseEndpoints(m)
			case *routev3.RouteConfiguration:
				_, err = ParseRouteConfiguration(m)
			case *listenerv3.Listener:
				_, err = ParseListener(m)
			}
			if err == nil {
				t.Fatalf("Parse: no error, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}
