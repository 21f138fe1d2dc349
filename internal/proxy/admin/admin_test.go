package admin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/internal/proxy/listener"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a fixed Source.
type fakeSource struct {
	cfg   *runtime.Config
	ready bool
}

func (f *fakeSource) Current() *runtime.Config { return f.cfg }
func (f *fakeSource) Ready() bool              { return f.ready }
func (f *fakeSource) Statuses() []listener.Status {
	if f.cfg == nil {
		return nil
	}
	var out []listener.Status
	for _, l := range f.cfg.Listeners {
		out = append(out, listener.Status{Name: l.Name, Address: l.Address, Kind: l.Kind, Bound: l.Name != "broken", Error: map[bool]string{true: "bind: address already in use"}[l.Name == "broken"]})
	}
	return out
}

func sampleConfig() *runtime.Config {
	return &runtime.Config{
		Version: "v7",
		Listeners: []*runtime.Listener{
			{Name: "broken", Address: netip.MustParseAddrPort("127.0.10.3:9090"), Kind: runtime.ListenerTCP,
				TCP: &runtime.TCPListener{Clusters: []runtime.WeightedCluster{{Name: "inbound|9090||", Weight: 1}}}},
			{Name: "inbound_127.0.10.3_9080", Address: netip.MustParseAddrPort("127.0.10.3:9080"), Direction: runtime.Inbound, Kind: runtime.ListenerHTTP,
				HTTP: &runtime.HTTPListener{RouteName: "inbound|9080||"}},
		},
		Routes: map[string]*runtime.RouteTable{"inbound|9080||": {Name: "inbound|9080||", VirtualHosts: []*runtime.VirtualHost{{
			Name: "inbound|http|9080", Domains: []string{"*"},
			Routes: []*runtime.Route{{Name: "default", Match: runtime.RouteMatch{PathKind: runtime.PathRegex, Regex: regexp.MustCompile(`^(?:/.*)$`)},
				Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: "inbound|9080||", Weight: 1}}, Timeout: 0}}},
		}}}},
		Clusters: map[string]*runtime.Cluster{
			"inbound|9080||": {Name: "inbound|9080||", Protocol: runtime.UseDownstream, Endpoints: []runtime.Endpoint{{Host: "127.0.20.3", Port: 9080, Weight: 1, Healthy: true}}},
			"outbound|9080||ratings.default.svc.cluster.local": {Name: "outbound|9080||ratings.default.svc.cluster.local", ConnectTimeout: 10 * time.Second,
				Endpoints: []runtime.Endpoint{
					{Host: "127.0.10.6", Port: 9080, Weight: 1, Healthy: true, Locality: runtime.Locality{Region: "r1", Zone: "z1"}},
					{Host: "127.0.10.7", Port: 9080, Weight: 2, Healthy: false, Priority: 1},
				}},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func newServer(t *testing.T, src Source, reg prometheus.Gatherer) *Server {
	t.Helper()
	s, err := New(Options{Address: netip.MustParseAddr("127.0.0.1"), Source: src, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAdminEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "istio_requests_total", Help: "h"})
	reg.MustRegister(c)
	c.Inc()
	s := newServer(t, &fakeSource{cfg: sampleConfig(), ready: true}, reg)
	tests := []struct {
		name       string
		handler    http.Handler
		path       string
		wantStatus int
		golden     string
		contains   string
	}{
		{"config_dump", s.AdminHandler(), "/config_dump", 200, "config_dump.json", ""},
		{"clusters", s.AdminHandler(), "/clusters", 200, "clusters.txt", ""},
		{"clusters json", s.AdminHandler(), "/clusters?format=json", 200, "clusters.json", ""},
		{"listeners", s.AdminHandler(), "/listeners", 200, "listeners.txt", ""},
		{"ready", s.AdminHandler(), "/ready", 200, "", "LIVE"},
		{"admin stats", s.AdminHandler(), "/stats", 200, "", "istio_requests_total 1"},
		{"stats port", s.StatsHandler(), "/stats/prometheus", 200, "", "istio_requests_total 1"},
		{"health port", s.HealthHandler(), "/healthz/ready", 200, "", ""},
		{"unknown path", s.AdminHandler(), "/nope", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.handler.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.golden != "" {
				golden(t, tt.golden, rec.Body.Bytes())
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body %q lacks %q", rec.Body, tt.contains)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	s := newServer(t, &fakeSource{}, nil)
	for _, tt := range []struct {
		name string
		h    http.Handler
		path string
	}{{"health", s.HealthHandler(), "/healthz/ready"}, {"admin", s.AdminHandler(), "/ready"}} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", rec.Code)
			}
		})
	}
}

func TestRejectsWildcard(t *testing.T) {
	for _, a := range []string{"0.0.0.0", "::"} {
		if _, err := New(Options{Address: netip.MustParseAddr(a), Source: &fakeSource{}}); err == nil {
			t.Errorf("New(%s) succeeded, want an error", a)
		}
	}
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return netip.MustParseAddrPort(l.Addr().String()).Port()
}

func TestRun(t *testing.T) {
	ports := [3]uint16{freePort(t), freePort(t), freePort(t)}
	s, err := New(Options{Address: netip.MustParseAddr("127.0.0.1"), AdminPort: ports[0], HealthPort: ports[1], StatsPort: ports[2],
		Source: &fakeSource{cfg: sampleConfig(), ready: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i, path := range []string{"/ready", "/healthz/ready", "/stats/prometheus"} {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", ports[i], path)
		var resp *http.Response
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err = c.Get(url)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", url, resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestAdminServesProfiles(t *testing.T) {
	s, err := New(Options{Address: netip.MustParseAddr("127.0.0.1"), Source: &fakeSource{}, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.AdminHandler()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs", "/debug/pprof/heap"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s = %d, want 200", path, rec.Code)
		}
	}
}
