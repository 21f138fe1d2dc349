package compile

import (
	"reflect"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestParseCluster(t *testing.T) {
	edit := func(c *clusterv3.Cluster, f func(*clusterv3.Cluster)) *clusterv3.Cluster { f(c); return c }
	const name = "outbound|9080|v1|reviews.default.svc.cluster.local"
	tests := []struct {
		name string
		in   *clusterv3.Cluster
		want *Cluster
	}{
		{
			name: "eds round robin",
			in:   edsCluster(name),
			want: &Cluster{Runtime: &runtime.Cluster{Name: name, ConnectTimeout: 10 * time.Second}, EDS: name},
		},
		{
			name: "eds without service name, least request, http2",
			in: edit(edsCluster("grpc"), func(c *clusterv3.Cluster) {
				c.EdsClusterConfig.ServiceName = ""
				c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
				c.TypedExtensionProtocolOptions = h2Options(t)
			}),
			want: &Cluster{Runtime: &runtime.Cluster{Name: "grpc", ConnectTimeout: 10 * time.Second, LB: runtime.LeastRequest, Protocol: runtime.HTTP2}, EDS: "grpc"},
		},
		{
			name: "static inbound use downstream, random",
			in: edit(staticCluster("inbound|9080||", "127.0.20.1", 9080), func(c *clusterv3.Cluster) {
				c.LbPolicy = clusterv3.Cluster_RANDOM
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}},
				})}
			}),
			want: &Cluster{Runtime: &runtime.Cluster{
				Name: "inbound|9080||", ConnectTimeout: 10 * time.Second, LB: runtime.Random, Protocol: runtime.UseDownstream,
				Endpoints: []runtime.Endpoint{{Host: "127.0.20.1", Port: 9080, Weight: 1, Healthy: true, LocalityWeight: 1}},
			}},
		},
		{
			name: "blackhole",
			in:   &clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}},
			want: &Cluster{Runtime: &runtime.Cluster{Name: "BlackHoleCluster"}},
		},
		{
			name: "strict dns",
			in: edit(staticCluster("outbound|443||example.com", "example.com", 443), func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			}),
			want: &Cluster{Runtime: &runtime.Cluster{
				Name: "outbound|443||example.com", ConnectTimeout: 10 * time.Second, DNS: true,
				Endpoints: []runtime.Endpoint{{Host: "example.com", Port: 443, Weight: 1, Healthy: true, LocalityWeight: 1}},
			}},
		},
		{
			name: "explicit http1 and legacy http2 options",
			in: edit(edsCluster("c"), func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
					}},
				})}
			}),
			want: &Cluster{Runtime: &runtime.Cluster{Name: "c", ConnectTimeout: 10 * time.Second, Protocol: runtime.HTTP1}, EDS: "c"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.in.Validate(); err != nil {
				t.Fatalf("test input does not validate: %v", err)
			}
			got, err := ParseCluster(tc.in)
			if err != nil {
				t.Fatalf("ParseCluster: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpRegexp); diff != "" {
				t.Errorf("ParseCluster (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseClusterRejects(t *testing.T) {
	edit := func(f func(*clusterv3.Cluster)) *clusterv3.Cluster { c := edsCluster("c"); f(c); return c }
	tests := []struct {
		name string
		in   *clusterv3.Cluster
		want string
	}{
		{
			name: "unknown transport socket",
			in: edit(func(c *clusterv3.Cluster) {
				c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}
			}),
			want: `cluster "c": transport_socket: unsupported transport socket "envoy.transport_sockets.alts"`,
		},
		{
			name: "cluster provided without original dst",
			in:   edit(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }),
			want: `cluster "c": lb_policy: CLUSTER_PROVIDED needs type ORIGINAL_DST`,
		},
		{
			name: "custom cluster type",
			in: edit(func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
					Name: "envoy.clusters.aggregate", TypedConfig: &anypb.Any{TypeUrl: "x"},
				}}
			}),
			want: `cluster "c": cluster_type: unsupported custom cluster type "envoy.clusters.aggregate"`,
		},
		{
			name: "least request bias",
			in:   edit(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG }),
			want: `cluster "c": lb_policy: unsupported LOAD_BALANCING_POLICY_CONFIG`,
		},
		{
			name: "eds from a file",
			in: edit(func(c *clusterv3.Cluster) {
				c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/x"}}
			}),
			want: `cluster "c": eds_cluster_config.eds_config: unsupported config source, want ads`,
		},
		{
			name: "auto protocol",
			in: edit(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(t, &httpv3.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_AutoConfig{AutoConfig: &httpv3.HttpProtocolOptions_AutoHttpConfig{}},
				})}
			}),
			want: `cluster "c": typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]: unsupported upstream protocol options *httpv3.HttpProtocolOptions_AutoConfig`,
		},
		{
			name: "unknown protocol options",
			in: edit(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.filters.network.thrift_proxy": {TypeUrl: "type.googleapis.com/x"}}
			}),
			want: `cluster "c": typed_extension_protocol_options["envoy.filters.network.thrift_proxy"]: unsupported protocol options`,
		},
		{
			name: "static hostname",
			in:   staticCluster("s", "localhost", 80),
			want: `cluster "s": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "localhost" is not an IP address`,
		},
		{
			name: "health checks",
			in: edit(func(c *clusterv3.Cluster) {
				c.HealthChecks = []*corev3.HealthCheck{{}}
			}),
			want: `cluster "c": health_checks: unsupported`,
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

func TestParseEndpoints(t *testing.T) {
	in := &endpointv3.ClusterLoadAssignment{
		ClusterName: "outbound|9080||reviews.default.svc.cluster.local",
		Endpoints: []*endpointv3.LocalityLbEndpoints{
			{
				Locality:            &corev3.Locality{Region: "eu", Zone: "eu-1", SubZone: "a"},
				LoadBalancingWeight: wrapperspb.UInt32(2),
				LbEndpoints: []*endpointv3.LbEndpoint{
					ep("127.0.10.3", 9080),
					{
						HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.10.4", 9080)}},
						HealthStatus:        corev3.HealthStatus_UNHEALTHY,
						LoadBalancingWeight: wrapperspb.UInt32(5),
					},
				},
			},
			{
				Priority: 1, LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("::ffff:127.0.10.5", 9080)}},
				}},
			},
		},
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := ParseEndpoints(in)
	if err != nil {
		t.Fatal(err)
	}
	loc := runtime.Locality{Region: "eu", Zone: "eu-1", SubZone: "a"}
	want := []runtime.Endpoint{
		{Host: "127.0.10.3", Port: 9080, Weight: 1, Locality: loc, Healthy: true, LocalityWeight: 2},
		{Host: "127.0.10.4", Port: 9080, Weight: 5, Locality: loc, LocalityWeight: 2},
		{Host: "127.0.10.5", Port: 9080, Weight: 1, Priority: 1, Healthy: true, LocalityWeight: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseEndpoints (-want +got):\n%s", diff)
	}
}

// TestParseEndpointsShareSocketMatch checks the transport_socket_match metadata
// endpoints carry, and that endpoints with the same pairs share one map
// (issue 5: a map per endpoint was most of an endpoint's memory).
func TestParseEndpointsShareSocketMatch(t *testing.T) {
	withMeta := func(ip string, fields map[string]*structpb.Value) *endpointv3.LbEndpoint {
		e := ep(ip, 9080)
		e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{socketMatchKey: {Fields: fields}}}
		return e
	}
	istio := map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}
	custom := map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio"), "zone": structpb.NewStringValue("a"),
		"ignored": structpb.NewNumberValue(1)}
	in := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: []*endpointv3.LbEndpoint{withMeta("127.0.10.1", istio), withMeta("127.0.10.2", custom), withMeta("127.0.10.3", custom)}},
		{LbEndpoints: []*endpointv3.LbEndpoint{ep("127.0.10.4", 9080), withMeta("127.0.10.5", map[string]*structpb.Value{})}},
	}}
	got, err := ParseEndpoints(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"tlsMode": "istio"}, {"tlsMode": "istio", "zone": "a"}, {"tlsMode": "istio", "zone": "a"}, nil, {}}
	var gotMatch []map[string]string
	for _, e := range got {
		gotMatch = append(gotMatch, e.SocketMatch)
	}
	if diff := cmp.Diff(want, gotMatch); diff != "" {
		t.Errorf("SocketMatch per endpoint (-want +got):\n%s", diff)
	}
	if !sameMap(got[1].SocketMatch, got[2].SocketMatch) {
		t.Error("endpoints 1 and 2 have equal SocketMatch pairs but separate maps")
	}
	if sameMap(got[0].SocketMatch, got[1].SocketMatch) {
		t.Error("endpoints 0 and 1 share a SocketMatch map but hold different pairs")
	}
	again, err := ParseEndpoints(&endpointv3.ClusterLoadAssignment{ClusterName: "d", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: []*endpointv3.LbEndpoint{withMeta("127.0.10.6", istio)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !sameMap(got[0].SocketMatch, again[0].SocketMatch) {
		t.Error("tlsMode: istio endpoints of two assignments have separate maps")
	}
}

// sameMap reports whether a and b are one map (not just equal).
func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func TestParseEndpointsRejects(t *testing.T) {
	tests := []struct {
		name string
		in   *endpointv3.ClusterLoadAssignment
		want string
	}{
		{
			name: "hostname",
			in:   cla("c", ep("reviews", 9080)),
			want: `endpoints "c": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "reviews" is not an IP address`,
		},
		{
			name: "port zero",
			in:   cla("c", ep("127.0.0.1", 0)),
			want: `endpoints "c": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 0`,
		},
		{
			name: "udp",
			in: func() *endpointv3.ClusterLoadAssignment {
				c := cla("c", ep("127.0.0.1", 53))
				c.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
				return c
			}(),
			want: `endpoints "c": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.protocol: unsupported UDP`,
		},
		{
			name: "named endpoint",
			in:   cla("c", &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_EndpointName{EndpointName: "x"}}),
			want: `endpoints "c": endpoints[0].lb_endpoints[0].endpoint_name: unsupported`,
		},
		{
			name: "drop overloads",
			in: func() *endpointv3.ClusterLoadAssignment {
				c := cla("c")
				c.Policy = &endpointv3.ClusterLoadAssignment_Policy{DropOverloads: []*endpointv3.ClusterLoadAssignment_Policy_DropOverload{{Category: "x"}}}
				return c
			}(),
			want: `endpoints "c": policy.drop_overloads: unsupported`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEndpoints(tc.in)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}
