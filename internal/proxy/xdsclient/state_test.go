package xdsclient

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/proxy/compile"
)

// rdsListener is goodListener renamed, referencing route table rds.
func rdsListener(t testing.TB, name, rds string) *listenerv3.Listener {
	l := goodListener(t)
	l.Name = name
	var h hcmv3.HttpConnectionManager
	if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
		t.Fatal(err)
	}
	h.GetRds().RouteConfigName = rds
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &h)}
	return l
}

func namedRoute(name string) *routev3.RouteConfiguration {
	r := routeTable()
	r.Name = name
	return r
}

// sotw is a state-of-the-world response of msgs.
func sotw(t testing.TB, typeURL, version string, msgs ...proto.Message) *response {
	r := &response{typeURL: typeURL, version: version, nonce: version, full: wildcard(typeURL)}
	for _, m := range msgs {
		r.items = append(r.items, item{any: mustAny(t, m)})
	}
	return r
}

func newTestState() *state {
	return newState(slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second)
}

func mustApply(t *testing.T, s *state, r *response, now time.Time) []subChange {
	t.Helper()
	ch, err := s.apply(r, now)
	if err != nil {
		t.Fatalf("apply %s %s: %v", typeName(r.typeURL), r.version, err)
	}
	return ch
}

func TestStateWarming(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name       string
		routeLate  bool // the route table never arrives
		wantRoutes int
	}{
		{name: "publishes when everything arrived", wantRoutes: 1},
		{name: "publishes without the route after the warming timeout", routeLate: true, wantRoutes: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestState()
			ch := mustApply(t, s, sotw(t, compile.ClusterType, "1", edsCluster()), t0)
			if diff := cmp.Diff([]subChange{{typeURL: compile.EndpointType, added: []string{reviews}}}, ch, cmp.AllowUnexported(subChange{})); diff != "" {
				t.Errorf("EDS subscription (-want +got):\n%s", diff)
			}
			if cfg := s.build(t0); cfg != nil {
				t.Fatal("published before LDS answered")
			}
			ch = mustApply(t, s, sotw(t, compile.ListenerType, "1", goodListener(t)), t0)
			if diff := cmp.Diff([]subChange{{typeURL: compile.RouteType, added: []string{"9080"}}}, ch, cmp.AllowUnexported(subChange{})); diff != "" {
				t.Errorf("RDS subscription (-want +got):\n%s", diff)
			}
			mustApply(t, s, sotw(t, compile.EndpointType, "1", endpoints("127.0.10.3")), t0)
			if cfg := s.build(t0.Add(time.Second)); cfg != nil {
				t.Fatal("published while the route table is warming")
			}
			if names, d := s.pending(t0.Add(time.Second)); len(names) != 1 || !d.Equal(t0.Add(10*time.Second)) {
				t.Errorf("pending = %v, %v; want [route 9080] until t0+10s", names, d)
			}
			now := t0.Add(10 * time.Second)
			if !tc.routeLate {
				now = t0.Add(2 * time.Second)
				mustApply(t, s, sotw(t, compile.RouteType, "1", routeTable()), now)
			}
			cfg := s.build(now)
			if cfg == nil {
				t.Fatal("nothing published")
			}
			if len(cfg.Routes) != tc.wantRoutes || cfg.Listeners[0].HTTP.RouteName != "9080" {
				t.Errorf("config routes = %v, listener route %q", cfg.Routes, cfg.Listeners[0].HTTP.RouteName)
			}
			if s.build(now) != nil {
				t.Error("published the same state twice")
			}
		})
	}
}

func TestStateSotWSemantics(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newTestState()
	mustApply(t, s, sotw(t, compile.ClusterType, "1"), t0)
	mustApply(t, s, sotw(t, compile.ListenerType, "1", rdsListener(t, "a", "ra"), rdsListener(t, "b", "rb")), t0)
	if got := s.subscribed(compile.RouteType); !cmp.Equal(got, []string{"ra", "rb"}) {
		t.Fatalf("RDS names = %v", got)
	}
	// RDS responses carry only named resources; an unrequested one is ignored.
	mustApply(t, s, sotw(t, compile.RouteType, "1", namedRoute("ra"), namedRoute("other")), t0)
	mustApply(t, s, sotw(t, compile.RouteType, "2", namedRoute("rb")), t0)
	if cfg := s.build(t0); cfg == nil || len(cfg.Routes) != 2 || cfg.Version != "2" {
		t.Fatalf("config = %+v, want routes ra and rb at version 2", cfg)
	}
	// LDS is a complete set: b is removed by omission, and its route with it.
	ch := mustApply(t, s, sotw(t, compile.ListenerType, "3", rdsListener(t, "a", "ra")), t0)
	if diff := cmp.Diff([]subChange{{typeURL: compile.RouteType, removed: []string{"rb"}}}, ch, cmp.AllowUnexported(subChange{})); diff != "" {
		t.Errorf("RDS change (-want +got):\n%s", diff)
	}
	cfg := s.build(t0)
	if cfg == nil || len(cfg.Listeners) != 1 || cfg.Listeners[0].Name != "a" || len(cfg.Routes) != 1 || cfg.Routes["ra"] == nil {
		t.Fatalf("config after removal = %+v", cfg)
	}
	// The same set again changes nothing.
	if mustApply(t, s, sotw(t, compile.ListenerType, "4", rdsListener(t, "a", "ra")), t0); s.build(t0) != nil {
		t.Error("an identical resend published a config")
	}
}

func TestStateDeltaSemantics(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newTestState()
	delta := func(typeURL, version string, removed []string, msgs ...interface {
		proto.Message
		GetName() string
	}) *response {
		r := &response{typeURL: typeURL, version: version, nonce: version, removed: removed}
		for _, m := range msgs {
			r.items = append(r.items, item{name: m.GetName(), version: "h-" + m.GetName(), any: mustAny(t, m)})
		}
		return r
	}
	mustApply(t, s, delta(compile.ListenerType, "1", nil), t0)
	other := edsCluster()
	other.Name = "other"
	other.EdsClusterConfig.ServiceName = ""
	mustApply(t, s, delta(compile.ClusterType, "1", nil, edsCluster(), other), t0)
	if got := s.versions[compile.ClusterType]; !cmp.Equal(got, map[string]string{reviews: "h-" + reviews, "other": "h-other"}) {
		t.Errorf("versions = %v", got)
	}
	ch := mustApply(t, s, delta(compile.ClusterType, "2", []string{"other", "never-had"}), t0)
	if diff := cmp.Diff([]subChange{{typeURL: compile.EndpointType, removed: []string{"other"}}}, ch, cmp.AllowUnexported(subChange{})); diff != "" {
		t.Errorf("EDS change (-want +got):\n%s", diff)
	}
	if _, ok := s.parsed.Clusters["other"]; ok {
		t.Error("removed cluster still cached")
	}
	if _, ok := s.versions[compile.ClusterType]["other"]; ok {
		t.Error("removed cluster version still cached")
	}
	// A resource whose name disagrees with its wrapper is rejected.
	bad := delta(compile.ClusterType, "3", nil, edsCluster())
	bad.items[0].name = "spoofed"
	if _, err := s.apply(bad, t0); err == nil || !strings.Contains(err.Error(), `resource "spoofed"`) {
		t.Errorf("apply = %v, want name mismatch", err)
	}
}

func TestStateNACKKeepsState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newTestState()
	mustApply(t, s, sotw(t, compile.ListenerType, "1"), t0)
	mustApply(t, s, sotw(t, compile.ClusterType, "1", edsCluster()), t0)
	mustApply(t, s, sotw(t, compile.EndpointType, "1", endpoints("127.0.10.3")), t0)
	if s.build(t0) == nil {
		t.Fatal("no initial config")
	}
	tls := edsCluster()
	tls.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
	_, err := s.apply(sotw(t, compile.ClusterType, "2", edsCluster(), tls), t0)
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("apply = %v, want duplicate error", err)
	}
	broken := &clusterv3.Cluster{Name: "x", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG}
	_, err = s.apply(sotw(t, compile.ClusterType, "2", broken), t0)
	if want := `cluster "x": lb_policy: unsupported LOAD_BALANCING_POLICY_CONFIG`; err == nil || err.Error() != want {
		t.Fatalf("apply = %v, want %s", err, want)
	}
	if _, ok := s.parsed.Clusters[reviews]; !ok || s.build(t0) != nil || s.version != "1" {
		t.Error("a rejected response changed the state")
	}
}
