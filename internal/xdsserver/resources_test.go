package xdsserver

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

func TestBuild(t *testing.T) {
	const c1, c2 = "outbound|9080||a.default.svc.cluster.local", "outbound|9080||b.default.svc.cluster.local"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := func() *translator.Resources {
		return &translator.Resources{Clusters: map[string]proto.Message{c1: edsCluster(c1, time.Second), c2: edsCluster(c2, time.Second)}}
	}
	_, baseVers := build(base(), "n", quiet, nil)

	tests := []struct {
		name         string
		in           *translator.Resources
		wantClusters []string
		sameCDS      bool // CDS version equals base's
	}{
		{name: "same resources, same version", in: base(), wantClusters: []string{c1, c2}, sameCDS: true},
		{name: "changed field, new version", in: func() *translator.Resources {
			r := base()
			r.Clusters[c2] = edsCluster(c2, 2*time.Second)
			return r
		}(), wantClusters: []string{c1, c2}},
		{name: "invalid resource dropped", in: func() *translator.Resources {
			r := base()
			r.Clusters[c2] = edsCluster(c2, -time.Second) // connect_timeout must be > 0
			return r
		}(), wantClusters: []string{c1}},
		{name: "nil resources", in: nil, wantClusters: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, vers := build(tc.in, "n", quiet, nil)
			got := slices.Sorted(maps.Keys(snap.GetResources(resourcev3.ClusterType)))
			if got == nil {
				got = []string{}
			}
			if diff := cmp.Diff(tc.wantClusters, got); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			if same := vers[0] == baseVers[0]; same != tc.sameCDS {
				t.Errorf("CDS version %q vs base %q: same=%v, want %v", vers[0], baseVers[0], same, tc.sameCDS)
			}
			for i, st := range servedTypes {
				if v := snap.GetVersion(st.url); v != vers[i] {
					t.Errorf("%s: cache version %q != reported %q", st.url, v, vers[i])
				}
			}
			if snap.GetVersion(resourcev3.ListenerType) != baseVers[2] {
				t.Errorf("LDS version changed without listeners changing")
			}
		})
	}
}

// A translator that panics must not take the server down; the proxy stays
// connected with no config.
func TestTranslatePanicIsContained(t *testing.T) {
	srv, err := New(Options{
		Translate: func(*snapshot.Snapshot, translator.Proxy) *translator.Resources { panic("TODO") },
		ParseNode: fakeParseNode,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Update(&snapshot.Snapshot{Version: 7})
	k := streamKey{id: 1}
	srv.open(k)
	srv.first(k, nodeProto("x"))
	ps, ok := proxyStatus(srv, "x")
	if !ok {
		t.Fatal("node x not in Status")
	}
	if ps.SnapshotVersion != 0 {
		t.Errorf("SnapshotVersion = %d, want 0 (nothing computed)", ps.SnapshotVersion)
	}
	if _, err := srv.sidecars.GetSnapshot("x"); err == nil {
		t.Error("a snapshot was set despite the panic")
	}
	srv.detach(k)
	if len(srv.Status()) != 0 {
		t.Errorf("Status after detach = %+v, want empty", srv.Status())
	}
}

func TestBuildDropsUnreferenced(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const eds, static = "outbound|9080||a.default.svc.cluster.local", "inbound|9080||"
	staticCluster := &clusterv3.Cluster{
		Name:                 static,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       loadAssignment(static, "127.0.20.1", 9080),
	}
	broken := socketListener(t, "127.0.10.1_8080", "8080")
	broken.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}} // address is required
	tests := []struct {
		name                 string
		in                   *translator.Resources
		wantRoutes, wantCLAs []string
	}{
		{
			name: "socket listener keeps its route, not a stray",
			in: &translator.Resources{
				Listeners: map[string]proto.Message{"127.0.10.1_9080": socketListener(t, "127.0.10.1_9080", "9080")},
				Routes:    map[string]proto.Message{"9080": routeTo("9080", eds), "stray": routeTo("stray", eds)},
			},
			wantRoutes: []string{"9080"},
		},
		{
			name: "API listener keeps its route",
			in: &translator.Resources{
				Listeners: map[string]proto.Message{"a:9080": apiListener(t, "a:9080", "9080")},
				Routes:    map[string]proto.Message{"9080": routeTo("9080", eds)},
			},
			wantRoutes: []string{"9080"},
		},
		{
			name: "route of an invalid listener goes with it",
			in: &translator.Resources{
				Listeners: map[string]proto.Message{"127.0.10.1_8080": broken},
				Routes:    map[string]proto.Message{"8080": routeTo("8080", eds)},
			},
		},
		{
			name: "endpoints only for EDS clusters",
			in: &translator.Resources{
				Clusters: map[string]proto.Message{eds: edsCluster(eds, time.Second), static: staticCluster},
				Endpoints: map[string]proto.Message{
					eds:       loadAssignment(eds, "127.0.20.1", 9080),
					static:    loadAssignment(static, "127.0.20.1", 9080),
					"missing": loadAssignment("missing", "127.0.20.1", 9080),
				},
			},
			wantCLAs: []string{eds},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, _ := build(tc.in, "n", quiet, nil)
			got := func(typeURL string) []string {
				return slices.Sorted(maps.Keys(snap.GetResources(typeURL)))
			}
			if diff := cmp.Diff(tc.wantRoutes, got(resourcev3.RouteType)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantCLAs, got(resourcev3.EndpointType)); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}
