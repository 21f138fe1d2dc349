package translator

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/proto"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs s on lis until the test ends.
func serve(t *testing.T, s *grpc.Server, lis net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// TestProxylessGRPC serves the translation for a GENERATOR=grpc node from a
// real ADS server and has grpc-go's xDS client route an RPC through it.
func TestProxylessGRPC(t *testing.T) {
	backendLis := listenLoopback(t)
	backend := grpc.NewServer()
	healthpb.RegisterHealthServer(backend, health.NewServer())
	serve(t, backend, backendLis)
	backendPort := backendLis.Addr().(*net.TCPAddr).Port

	snap := snapshotOf(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}, locality: r1/z1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec: {host: echo, subsets: [{name: v1}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-never: {exact: "1"}}}]
    route: [{destination: {host: echo}}]
  - route:
    - {destination: {host: echo, subset: v1}, weight: 100}
    retries: {attempts: 0}
`, backendPort))

	const nodeID = "sidecar~127.0.0.9~client.default~default.svc.cluster.local"
	meta, err := structpb.NewStruct(map[string]any{"GENERATOR": "grpc"})
	if err != nil {
		t.Fatal(err)
	}
	res := Translate(snap, ParseNode(&corev3.Node{Id: nodeID, Metadata: meta}))
	validateAll(t, res)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	list := func(m map[string]proto.Message) []types.Resource {
		var out []types.Resource
		for _, k := range sortedKeys(m) {
			out = append(out, m[k])
		}
		return out
	}
	cs, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: list(res.Listeners),
		resourcev3.RouteType:    list(res.Routes),
		resourcev3.ClusterType:  list(res.Clusters),
		resourcev3.EndpointType: list(res.Endpoints),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(ctx, nodeID, cs); err != nil {
		t.Fatal(err)
	}
	xdsLis := listenLoopback(t)
	xdsServer := grpc.NewServer()
	srvCtx, stopSrv := context.WithCancel(context.Background())
	t.Cleanup(stopSrv)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(xdsServer, serverv3.NewServer(srvCtx, cache, nil))
	serve(t, xdsServer, xdsLis)

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q, "metadata": {"GENERATOR": "grpc"}}
}`, xdsLis.Addr().String(), nodeID)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///echo.default.svc.cluster.local:7070",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("RPC through xDS: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status = %v, want SERVING", resp.GetStatus())
	}
}
