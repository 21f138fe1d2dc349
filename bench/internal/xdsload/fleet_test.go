package xdsload

import (
	"context"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// snapshot is two EDS clusters, one listener whose HCM uses RDS route "80",
// the route and the endpoints; endpointAddr is the first cluster's endpoint.
func snapshot(t *testing.T, version, endpointAddr string) *cachev3.Snapshot {
	t.Helper()
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion: corev3.ApiVersion_V3}
	var clusters, clas []types.Resource
	for i, name := range []string{"outbound|80||a", "outbound|80||b"} {
		clusters = append(clusters, &clusterv3.Cluster{Name: name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads, ServiceName: name}})
		addr := "127.9.0.2"
		if i == 0 {
			addr = endpointAddr
		}
		clas = append(clas, &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}}}}}}})
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "out",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: "80"}}})
	if err != nil {
		t.Fatal(err)
	}
	lis := &listenerv3.Listener{Name: "127.9.0.1_80", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: clas,
		resourcev3.ListenerType: {lis},
		resourcev3.RouteType:    {&routev3.RouteConfiguration{Name: "80"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestFleetSyncsAndTimesAChange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta bool
	}{{"sotw", false}, {"delta", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
			nodes := []string{"sidecar~127.9.1.1~p0.ns~ns.svc.cluster.local", "sidecar~127.9.1.2~p1.ns~ns.svc.cluster.local"}
			for _, n := range nodes {
				if err := cache.SetSnapshot(ctx, n, snapshot(t, "1", "127.9.0.1")); err != nil {
					t.Fatal(err)
				}
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			gs := grpc.NewServer()
			srvCtx, stopSrv := context.WithCancel(ctx)
			defer stopSrv()
			discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(srvCtx, cache, nil))
			serveDone := make(chan error, 1)
			go func() { serveDone <- gs.Serve(lis) }()
			defer func() { gs.Stop(); <-serveDone }()

			fleet := New(Options{Server: lis.Addr().String(), Nodes: nodes, Delta: tc.delta})
			runCtx, stopFleet := context.WithCancel(ctx)
			runDone := make(chan error, 1)
			go func() { runDone <- fleet.Run(runCtx) }()
			defer func() {
				stopFleet()
				if err := <-runDone; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()

			if err := fleet.WaitSynced(ctx, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			before := fleet.Bytes()
			w := fleet.Watch([]byte("127.9.0.77"), []int{0, 1})
			for _, n := range nodes {
				if err := cache.SetSnapshot(ctx, n, snapshot(t, "2", "127.9.0.77")); err != nil {
					t.Fatal(err)
				}
			}
			delays, missing := w.Wait(ctx)
			if missing != 0 || len(delays) != 2 {
				t.Fatalf("Wait: %d delays, %d missing; want 2, 0", len(delays), missing)
			}
			if got := fleet.Bytes() - before; got <= 0 {
				t.Errorf("bytes after change = %d, want > 0", got)
			}
			// What changed is the first cluster's ClusterLoadAssignment.
			cla, err := anypb.New(snapshot(t, "3", "127.9.0.77").GetResources(resourcev3.EndpointType)["outbound|80||a"])
			if err != nil {
				t.Fatal(err)
			}
			if got, want := w.ChangedBytes(), len(cla.GetValue()); got != want {
				t.Errorf("ChangedBytes = %d, want %d (the changed ClusterLoadAssignment)", got, want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	sub, unsub := diff([]string{"a", "b", "c"}, []string{"b", "c", "d"})
	if len(sub) != 1 || sub[0] != "d" || len(unsub) != 1 || unsub[0] != "a" {
		t.Errorf("diff = %v, %v; want [d], [a]", sub, unsub)
	}
}
