package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    flags
	}{
		{name: "defaults", args: []string{"--config-dir", "d"},
			want: flags{configDir: "d", xdsAddr: "127.0.0.1:15010", monitoringAddr: "127.0.0.1:15014", proxyHTTPPort: 15080,
				gcPercent: defaultGCPercent,
				sec:       secFlags{dataDir: defaultDataDir(), trustDomain: "cluster.local", workloadCertTTL: 24 * time.Hour}}},
		{name: "all", args: []string{"--config-dir=d", "--xds-addr=127.0.0.2:1", "--monitoring-addr=127.0.0.2:2",
			"--proxy-http-port=0", "--log-level=debug", "--data-dir=/x", "--cacerts-dir=/c", "--trust-domain=example.org",
			"--workload-cert-ttl=5s", "--secure-addr=127.0.0.2:3", "--memory-limit=2GiB", "--gc-percent=50"},
			want: flags{configDir: "d", xdsAddr: "127.0.0.2:1", monitoringAddr: "127.0.0.2:2", logLevel: -4,
				memoryLimit: 2 << 30, gcPercent: 50,
				sec: secFlags{dataDir: "/x", cacertsDir: "/c", trustDomain: "example.org", workloadCertTTL: 5 * time.Second,
					secureAddr: "127.0.0.2:3"}}},
		{name: "bad ttl", args: []string{"--config-dir=d", "--workload-cert-ttl=0s"}, wantErr: "must be positive"},
		{name: "config dir required", args: nil, wantErr: "--config-dir is required"},
		{name: "bad port", args: []string{"--config-dir=d", "--proxy-http-port=70000"}, wantErr: "not a port"},
		{name: "bad level", args: []string{"--config-dir=d", "--log-level=loud"}, wantErr: "log-level"},
		{name: "bad memory limit", args: []string{"--config-dir=d", "--memory-limit=2GB"}, wantErr: "memory-limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("flags = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var readyLine = regexp.MustCompile(`msg="trellisd ready" xds=(\S+) monitoring=(\S+)`)

// TestRun starts trellisd on the Bookinfo example with the real config
// loader, registry and translator, and checks that it becomes ready, serves
// a sidecar its clusters over xDS, lists it in /debug/syncz, and stops
// cleanly on cancellation.
func TestRun(t *testing.T) {
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config-dir", "../../examples/bookinfo",
			"--xds-addr", "127.0.0.1:0", "--monitoring-addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, &logs)
	}()

	var m []string
	deadline := time.Now().Add(20 * time.Second)
	for m = readyLine.FindStringSubmatch(logs.String()); m == nil; m = readyLine.FindStringSubmatch(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	xdsAddr, monAddr := m[1], m[2]
	if code, body := httpGet(t, "http://"+monAddr+"/ready"); code != http.StatusOK {
		t.Errorf("/ready = %d %s", code, body)
	}

	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	const id = "sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("recv CDS: %v\nlogs:\n%s", err, logs.String())
	}
	if len(resp.GetResources()) == 0 {
		t.Errorf("CDS for reviews-v1 is empty")
	}
	if _, body := httpGet(t, "http://"+monAddr+"/debug/syncz"); !strings.Contains(body, "reviews-v1.default") {
		t.Errorf("/debug/syncz does not list reviews-v1:\n%s", body)
	}
	if _, body := httpGet(t, "http://"+monAddr+"/debug/configz"); !strings.Contains(body, `"origin": "../../examples/bookinfo/`) {
		t.Errorf("/debug/configz lacks origins:\n%.500s", body)
	}
	scancel()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
