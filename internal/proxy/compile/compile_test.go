package compile

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// bookinfoInput is a small but complete resource set: an outbound HTTP
// listener with RDS, an inbound TCP listener, an EDS cluster with its CLA, an
// EDS cluster whose CLA has not arrived, and a STATIC inbound cluster.
func bookinfoInput(t testing.TB) Input {
	return Input{
		Version: "v1",
		Listeners: map[string]*listenerv3.Listener{
			"127.0.30.1_9080":         httpListener(t, "127.0.30.1_9080", "127.0.30.1", 9080, "9080"),
			"inbound_127.0.10.1_9080": tcpListener(t, "inbound_127.0.10.1_9080", "127.0.10.1", 9080, "inbound|9080||"),
		},
		Routes: map[string]*routev3.RouteConfiguration{
			"9080": simpleRoute("9080", "reviews", "outbound|9080||reviews"),
		},
		Clusters: map[string]*clusterv3.Cluster{
			"outbound|9080||reviews": edsCluster("outbound|9080||reviews"),
			"outbound|9080||ratings": edsCluster("outbound|9080||ratings"),
			"inbound|9080||":         staticCluster("inbound|9080||", "127.0.20.1", 9080),
		},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{
			"outbound|9080||reviews": cla("outbound|9080||reviews", ep("127.0.10.3", 9080), ep("127.0.10.4", 9080)),
		},
	}
}

func bookinfoWant() *runtime.Config {
	return &runtime.Config{
		Version: "v1",
		Listeners: []*runtime.Listener{
			{
				Name: "127.0.30.1_9080", Address: netip.MustParseAddrPort("127.0.30.1:9080"),
				Direction: runtime.Outbound, Kind: runtime.ListenerHTTP,
				HTTP: &runtime.HTTPListener{StatPrefix: "outbound_0.0.0.0_9080", RouteName: "9080", WebSocket: true},
			},
			{
				Name: "inbound_127.0.10.1_9080", Address: netip.MustParseAddrPort("127.0.10.1:9080"),
				Direction: runtime.Inbound, Kind: runtime.ListenerTCP,
				TCP: &runtime.TCPListener{StatPrefix: "inbound|9080||", Clusters: []runtime.WeightedCluster{{Name: "inbound|9080||", Weight: 1}}},
			},
		},
		Routes: map[string]*runtime.RouteTable{
			"9080": {Name: "9080", VirtualHosts: []*runtime.VirtualHost{{
				Name: "reviews", Domains: []string{"reviews"},
				Routes: []*runtime.Route{{
					Match:   runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true},
					Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: "outbound|9080||reviews", Weight: 1}}},
				}},
			}}},
		},
		Clusters: map[string]*runtime.Cluster{
			"outbound|9080||reviews": {Name: "outbound|9080||reviews", ConnectTimeout: 10 * time.Second, Endpoints: []runtime.Endpoint{
				{Host: "127.0.10.3", Port: 9080, Weight: 1, Healthy: true, LocalityWeight: 2},
				{Host: "127.0.10.4", Port: 9080, Weight: 1, Healthy: true, LocalityWeight: 2},
			}},
			"outbound|9080||ratings": {Name: "outbound|9080||ratings", ConnectTimeout: 10 * time.Second},
			"inbound|9080||": {Name: "inbound|9080||", ConnectTimeout: 10 * time.Second, Endpoints: []runtime.Endpoint{
				{Host: "127.0.20.1", Port: 9080, Weight: 1, Healthy: true, LocalityWeight: 1},
			}},
		},
	}
}

func TestCompile(t *testing.T) {
	got, err := Compile(bookinfoInput(t))
	if err != nil {
		t.Fatal(err)
	}
	want := bookinfoWant()
	for _, l := range want.Listeners {
		withChain(&Listener{Runtime: l})
	}
	if diff := cmp.Diff(want, got, cmpRegexp); diff != "" {
		t.Errorf("Compile (-want +got):\n%s", diff)
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Input)
		want string
	}{
		{
			name: "bad route",
			edit: func(in *Input) {
				in.Routes["9080"].VirtualHosts[0].RetryPolicy = &routev3.RetryPolicy{}
			},
			want: `route "9080": virtual_hosts[0].retry_policy: unsupported on the virtual host`,
		},
		{
			name: "stored under another name",
			edit: func(in *Input) { in.Clusters["x"] = edsCluster("y") },
			want: `cluster "y": stored under name "x"`,
		},
		{
			name: "bad endpoints",
			edit: func(in *Input) { in.Endpoints["e"] = cla("e", ep("host", 1)) },
			want: `endpoints "e": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "host" is not an IP address`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := bookinfoInput(t)
			tc.edit(&in)
			if _, err := Compile(in); err == nil || err.Error() != tc.want {
				t.Errorf("Compile error = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestBuildInlineRoutesAndNames(t *testing.T) {
	in := bookinfoInput(t)
	gw := httpListener(t, "0.0.0.0_8080", "0.0.0.0", 8080, "unused")
	p, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	p.Listeners["0.0.0.0_8080"] = &Listener{Runtime: &runtime.Listener{Name: gw.Name}, Inline: &runtime.RouteTable{Name: "gw"}}
	cfg := Build("v2", p)
	if got := cfg.Routes[InlineRouteKey("0.0.0.0_8080")]; got == nil || got.Name != "gw" {
		t.Errorf("inline route table = %v, want gw", got)
	}
	if _, ok := p.Routes[InlineRouteKey("0.0.0.0_8080")]; ok {
		t.Errorf("Build modified the parsed set")
	}
	if diff := cmp.Diff([]string{"9080"}, p.RouteNames()); diff != "" {
		t.Errorf("RouteNames (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"outbound|9080||ratings", "outbound|9080||reviews"}, p.EndpointNames()); diff != "" {
		t.Errorf("EndpointNames (-want +got):\n%s", diff)
	}
	if got := cfg.Listeners[0].Name; got != "0.0.0.0_8080" {
		t.Errorf("first listener = %q, want sorted by name", got)
	}
}

func TestDecode(t *testing.T) {
	in := bookinfoInput(t)
	l := in.Listeners["127.0.30.1_9080"]
	wrapped := mustAny(t, &discoveryv3.Resource{Name: l.Name, Resource: mustAny(t, l)})
	tests := []struct {
		name     string
		typeURL  string
		any      *anypb.Any
		wantName string
		wantMsg  proto.Message
		wantErr  string
	}{
		{name: "listener", typeURL: ListenerType, any: mustAny(t, l), wantName: l.Name, wantMsg: l},
		{name: "wrapped listener", typeURL: ListenerType, any: wrapped, wantName: l.Name, wantMsg: l},
		{name: "route", typeURL: RouteType, any: mustAny(t, in.Routes["9080"]), wantName: "9080", wantMsg: in.Routes["9080"]},
		{name: "cluster", typeURL: ClusterType, any: mustAny(t, in.Clusters["inbound|9080||"]), wantName: "inbound|9080||", wantMsg: in.Clusters["inbound|9080||"]},
		{name: "endpoints", typeURL: EndpointType, any: mustAny(t, in.Endpoints["outbound|9080||reviews"]), wantName: "outbound|9080||reviews", wantMsg: in.Endpoints["outbound|9080||reviews"]},
		{name: "type mismatch", typeURL: ClusterType, any: mustAny(t, l), wantErr: `decode: got type "` + ListenerType + `", want "` + ClusterType + `"`},
		{name: "unknown type", typeURL: "type.googleapis.com/x", any: &anypb.Any{TypeUrl: "type.googleapis.com/x"}, wantErr: `decode: unsupported type "type.googleapis.com/x"`},
		{name: "garbage", typeURL: ListenerType, any: &anypb.Any{TypeUrl: ListenerType, Value: []byte{0xff}}, wantErr: "decode: listener: "},
		{name: "no name", typeURL: EndpointType, any: mustAny(t, &endpointv3.ClusterLoadAssignment{}), wantErr: `decode: endpoints: empty name`},
		{name: "nil", typeURL: ListenerType, wantErr: "decode: nil resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, msg, err := Decode(tc.typeURL, tc.any)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("Decode error = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.wantName {
				t.Errorf("name = %q, want %q", name, tc.wantName)
			}
			if diff := cmp.Diff(tc.wantMsg, msg, protocmp.Transform()); diff != "" {
				t.Errorf("msg (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes through Decode and the matching Parse
// function: neither may panic, and a parsed resource must build.
func FuzzDecode(f *testing.F) {
	in := bookinfoInput(f)
	types := []string{ListenerType, RouteType, ClusterType, EndpointType}
	seed := func(typ int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(typ), b)
	}
	for _, l := range in.Listeners {
		seed(0, l)
	}
	for _, r := range in.Routes {
		seed(1, r)
	}
	for _, c := range in.Clusters {
		seed(2, c)
	}
	for _, e := range in.Endpoints {
		seed(3, e)
	}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		typeURL := types[int(typ)%len(types)]
		_, msg, err := Decode(typeURL, &anypb.Any{TypeUrl: typeURL, Value: data})
		if err != nil {
			return
		}
		p := NewParsed()
		switch m := msg.(type) {
		case *listenerv3.Listener:
			l, err := ParseListener(m)
			if err != nil {
				return
			}
			p.Listeners[m.GetName()] = l
		case *routev3.RouteConfiguration:
			r, err := ParseRouteConfiguration(m)
			if err != nil {
				return
			}
			p.Routes[m.GetName()] = r
		case *clusterv3.Cluster:
			c, err := ParseCluster(m)
			if err != nil {
				return
			}
			p.Clusters[m.GetName()] = c
		case *endpointv3.ClusterLoadAssignment:
			eps, err := ParseEndpoints(m)
			if err != nil {
				return
			}
			p.Endpoints[m.GetClusterName()] = eps
		}
		if Build("fuzz", p) == nil {
			t.Fatal("Build returned nil")
		}
	})
}
