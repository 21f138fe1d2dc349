package xdsserver

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// TestProxylessGRPC runs grpc-go's own xDS client against the server: it
// dials xds:///echo.default.svc.cluster.local:9080, follows LDS (an API
// listener) → RDS → CDS → EDS to a health server on loopback, and the RPC
// succeeds.
func TestProxylessGRPC(t *testing.T) {
	// 1. A real backend: the standard health service.
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(backend, hs)
	backendDone := make(chan struct{})
	go func() {
		defer close(backendDone)
		backend.Serve(backendLis)
	}()
	defer func() {
		backend.Stop()
		<-backendDone
	}()
	backendPort := uint32(backendLis.Addr().(*net.TCPAddr).Port)

	// 2. The control plane, with the resources the translator would emit
	// for a proxyless client.
	const (
		target    = "echo.default.svc.cluster.local:9080"
		routeName = "9080"
		cluster   = "outbound|9080||echo.default.svc.cluster.local"
		id        = "sidecar~~client.default~default.svc.cluster.local"
	)
	h := startServer(t)
	h.fake.set(id, &translator.Resources{
		Listeners: map[string]proto.Message{
			target:                                 apiListener(t, target, routeName),
			"other.default.svc.cluster.local:8080": apiListener(t, "other.default.svc.cluster.local:8080", "8080"),
		},
		Routes:    map[string]proto.Message{routeName: routeTo(routeName, cluster), "8080": routeTo("8080", cluster)},
		Clusters:  map[string]proto.Message{cluster: edsCluster(cluster, time.Second)},
		Endpoints: map[string]proto.Message{cluster: loadAssignment(cluster, "127.0.0.1", backendPort)},
	})
	h.srv.Update(&snapshot.Snapshot{Version: 1})

	// 3. grpc-go's xDS resolver, bootstrapped at our server.
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q, "metadata": {"GENERATOR": "grpc"}}
	}`, h.addr, id)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatalf("xds resolver: %v", err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("Check via xDS: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status = %v, want SERVING", resp.GetStatus())
	}

	// 4. Every type the client asked for was sent and accepted.
	eventually(t, "proxyless client synced", func() bool {
		ps, ok := proxyStatus(h.srv, id)
		if !ok {
			return false
		}
		for _, ts := range ps.Types {
			if !ts.Synced() || ts.LastNACK != "" {
				return false
			}
		}
		return true
	})
}
