package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/trellis-mesh/trellis/internal/jointoken"
	"github.com/trellis-mesh/trellis/internal/proxy/identity"
)

var secureLine = regexp.MustCompile(`msg="trellisd ready" xds=(\S+) monitoring=\S+ secure=(\S+)`)

// TestSecureXDS runs trellisd with the plain-text xDS port off: a proxy
// finds its join token and the root in the data directory, gets its SVID
// over the CSR API, and follows xDS over mTLS on the same listener. Without a
// client certificate xDS is refused.
func TestSecureXDS(t *testing.T) {
	var logs syncBuffer
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config-dir", "../../examples/bookinfo", "--xds-addr", "",
			"--secure-addr", "127.0.0.1:0", "--monitoring-addr", "127.0.0.1:0", "--data-dir", dataDir}, &logs)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return after cancel")
		}
	}()
	var m []string
	deadline := time.Now().Add(20 * time.Second)
	for m = secureLine.FindStringSubmatch(logs.String()); m == nil; m = secureLine.FindStringSubmatch(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if m[1] != "off" {
		t.Errorf("plain-text xDS = %s, want off", m[1])
	}
	secure := m[2]
	tokenFile := jointoken.Path(dataDir, "default", "reviews-v1")
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{{tokenFile, 0o600}, {filepath.Join(dataDir, "join-secret"), 0o600},
		{filepath.Join(dataDir, "ca", "root-key.pem"), 0o600}, {filepath.Join(dataDir, "root-cert.pem"), 0o644}} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.perm {
			t.Errorf("%s mode %o, want %o", f.path, st.Mode().Perm(), f.perm)
		}
	}

	agent, err := identity.New(identity.Options{CAAddr: secure, Namespace: "default", Workload: "reviews-v1",
		TokenFile: tokenFile, RootFile: filepath.Join(dataDir, "root-cert.pem"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	adone := make(chan error, 1)
	go func() { adone <- agent.Run(actx) }()
	defer func() { acancel(); <-adone }()
	select {
	case <-agent.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("no certificate; logs:\n%s", logs.String())
	}

	tests := []struct {
		name     string
		cfg      *tls.Config
		wantCode codes.Code
	}{
		{name: "with its SVID", cfg: agent.XDSTLSConfig(), wantCode: codes.OK},
		{name: "without a client certificate", cfg: func() *tls.Config {
			c := agent.XDSTLSConfig()
			c.GetClientCertificate = nil
			return c
		}(), wantCode: codes.Unimplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := grpc.NewClient(secure, grpc.WithTransportCredentials(credentials.NewTLS(tc.cfg)))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			defer scancel()
			stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
			if err == nil {
				err = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType,
					Node: &corev3.Node{Id: "sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local"}})
			}
			var resp *discoveryv3.DiscoveryResponse
			if err == nil || err == io.EOF {
				// Send answers io.EOF when the server already ended the
				// stream (Unimplemented here); Recv tells the status.
				resp, err = stream.Recv()
			}
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantCode == codes.OK && len(resp.GetResources()) == 0 {
				t.Error("CDS over mTLS is empty")
			}
		})
	}
}
