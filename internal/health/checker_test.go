package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func parseSet(t *testing.T, yaml string) *config.Set {
	t.Helper()
	rs, _, errs := config.Parse("test.yaml", []byte(yaml))
	for _, e := range errs {
		t.Errorf("config: %v", e)
	}
	if t.Failed() {
		t.FailNow()
	}
	return config.NewSet(rs)
}

func workloadEntry(ns, name, addr, labels string) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: %s}
spec: {address: %s, labels: {%s}}
`, name, ns, addr, labels)
}

func TestTargets(t *testing.T) {
	wes := workloadEntry("default", "a-v1", "127.0.0.11", "app: a, version: v1") +
		workloadEntry("default", "a-v2", "127.0.0.12", "app: a, version: v2") +
		workloadEntry("default", "b", "127.0.0.13", "app: b") +
		workloadEntry("other", "a-other", "127.0.0.14", "app: a")
	tests := []struct {
		name, groups string
		want         []string // "workload <- group"
	}{
		{"metadata labels select in the group's namespace", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: a, namespace: default}
spec:
  metadata: {labels: {app: a}}
  template: {}
  probe: {httpGet: {port: 8080}}
`, []string{"default/a-v1 <- default/a", "default/a-v2 <- default/a"}},
		{"template labels when metadata has none", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: v2, namespace: default}
spec:
  template: {labels: {version: v2}}
  probe: {tcpSocket: {port: 8080}}
`, []string{"default/a-v2 <- default/v2"}},
		{"no labels select nothing", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: all, namespace: default}
spec:
  template: {}
  probe: {tcpSocket: {port: 8080}}
`, nil},
		{"no probe, no targets", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: a, namespace: default}
spec:
  metadata: {labels: {app: a}}
  template: {}
`, nil},
		{"exec probes are not run by trellisd", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: a, namespace: default}
spec:
  metadata: {labels: {app: a}}
  template: {}
  probe: {exec: {command: [/bin/true]}}
`, nil},
		{"first group in name order wins a shared workload", `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: z-v1, namespace: default}
spec:
  metadata: {labels: {version: v1}}
  template: {}
  probe: {tcpSocket: {port: 1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: a-all, namespace: default}
spec:
  metadata: {labels: {app: a}}
  template: {}
  probe: {tcpSocket: {port: 2}}
`, []string{"default/a-v1 <- default/a-all", "default/a-v2 <- default/a-all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for k, tg := range targets(parseSet(t, tt.groups+wes)) {
				got = append(got, k+" <- "+tg.group)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}

// flipper is a probe target whose health the test switches.
type flipper interface {
	port() uint32
	setHealthy(bool)
	close()
}

// httpFlipper answers 200 or 503.
type httpFlipper struct {
	srv *http.Server
	ln  net.Listener
	ok  atomic.Bool
	wg  sync.WaitGroup
}

func newHTTPFlipper(t *testing.T) flipper {
	f := &httpFlipper{}
	f.ok.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Header.Get("X-Probe") != "yes" {
			http.NotFound(w, r)
			return
		}
		if !f.ok.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	f.wg.Go(func() { _ = f.srv.Serve(ln) })
	return f
}

func (f *httpFlipper) port() uint32      { return uint32(f.ln.Addr().(*net.TCPAddr).Port) }
func (f *httpFlipper) setHealthy(b bool) { f.ok.Store(b) }
func (f *httpFlipper) close()            { _ = f.srv.Close(); f.wg.Wait() }

// tcpFlipper accepts connections while healthy and closes its listener
// while not.
type tcpFlipper struct {
	mu   sync.Mutex
	addr string
	ln   net.Listener
	wg   sync.WaitGroup
	t    *testing.T
}

func newTCPFlipper(t *testing.T) flipper {
	f := &tcpFlipper{t: t, addr: "127.0.0.1:0"}
	f.setHealthy(true)
	return f
}

func (f *tcpFlipper) port() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, p, _ := net.SplitHostPort(f.addr)
	var n uint32
	fmt.Sscan(p, &n)
	return n
}

func (f *tcpFlipper) setHealthy(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !b {
		if f.ln != nil {
			f.ln.Close()
			f.ln = nil
			f.wg.Wait()
		}
		return
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ln, f.addr = ln, ln.Addr().String()
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
}

func (f *tcpFlipper) close() { f.setHealthy(false) }

// grpcFlipper serves grpc.health.v1 with SERVING or NOT_SERVING.
type grpcFlipper struct {
	srv *grpc.Server
	hs  *grpchealth.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

func newGRPCFlipper(t *testing.T) flipper {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &grpcFlipper{srv: grpc.NewServer(), hs: grpchealth.NewServer(), ln: ln}
	healthpb.RegisterHealthServer(f.srv, f.hs)
	f.setHealthy(true)
	f.wg.Go(func() { _ = f.srv.Serve(ln) })
	return f
}

func (f *grpcFlipper) port() uint32 { return uint32(f.ln.Addr().(*net.TCPAddr).Port) }
func (f *grpcFlipper) setHealthy(b bool) {
	s := healthpb.HealthCheckResponse_NOT_SERVING
	if b {
		s = healthpb.HealthCheckResponse_SERVING
	}
	f.hs.SetServingStatus("ratings", s)
}
func (f *grpcFlipper) close() { f.srv.Stop(); f.wg.Wait() }

// waitHealth polls until workload default/w has the wanted health.
func waitHealth(t *testing.T, c *Checker, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, probed := c.Healthy("default", "w")
		if probed && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload default/w healthy=%v probed=%v, want healthy=%v", got, probed, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestCheckerFlips runs each probe kind against a real loopback server
// that goes down and comes back, and checks what the registry says.
func TestCheckerFlips(t *testing.T) {
	tests := []struct {
		name  string
		start func(*testing.T) flipper
		probe string // YAML of spec.probe's method, %d is the port
	}{
		{"httpGet", newHTTPFlipper, `httpGet: {path: /healthz, port: %d, httpHeaders: [{name: X-Probe, value: "yes"}]}`},
		{"tcpSocket", newTCPFlipper, `tcpSocket: {port: %d}`},
		{"grpc", newGRPCFlipper, `grpc: {port: %d, service: ratings}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.start(t)
			defer f.close()
			cfg := parseSet(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: default}
spec:
  metadata: {labels: {app: ratings}}
  template: {}
  probe:
    periodSeconds: 1
    timeoutSeconds: 1
    failureThreshold: 2
    successThreshold: 1
    `+tt.probe+`
`, f.port())+workloadEntry("default", "w", "127.0.0.1", "app: ratings")+workloadEntry("default", "x", "127.0.0.2", "app: ratings"))

			reg := prometheus.NewRegistry()
			c := New(Options{Registerer: reg})
			c.unit = 20 * time.Millisecond // one probe "second"
			src := &Source{Inner: registry.NewServiceEntrySource(), Checker: c}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			src.Registry(cfg) // hands the config to the checker

			healthOf := func() map[string]bool {
				r := src.Registry(cfg)
				out := map[string]bool{}
				for _, ep := range r.Endpoints["ratings.default.svc.cluster.local/default"] {
					out[ep.WorkloadName] = ep.Healthy
				}
				return out
			}
			waitHealth(t, c, true)
			// x (127.0.0.2) has nothing listening on the probe port: down.
			if got := healthOf(); !got["w"] {
				t.Errorf("after first success: %v, want w healthy", got)
			}
			f.setHealthy(false)
			waitHealth(t, c, false)
			if got := healthOf(); got["w"] {
				t.Errorf("after failures: %v, want w unhealthy", got)
			}
			select {
			case <-c.Changed():
			default:
				t.Error("Changed not signalled after a flip")
			}
			f.setHealthy(true)
			waitHealth(t, c, true)
			if got := healthOf(); !got["w"] {
				t.Errorf("after recovery: %v, want w healthy", got)
			}
			if got := gaugeValue(t, reg, "w"); got != 1 {
				t.Errorf("trellisd_workload_healthy{workload=w} = %v, want 1", got)
			}
		})
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, workload string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trellisd_workload_healthy" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "workload" && l.GetValue() == workload {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestCheckerFollowsConfig: removing the WorkloadGroup forgets the
// workload (healthy again, not probed) and signals the change.
func TestCheckerFollowsConfig(t *testing.T) {
	group := `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: g, namespace: default}
spec:
  metadata: {labels: {app: a}}
  template: {}
  probe: {periodSeconds: 1, tcpSocket: {port: 1}}
`
	we := workloadEntry("default", "w", "127.0.0.1", "app: a")
	c := New(Options{})
	c.unit = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c.Update(parseSet(t, group+we))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, probed := c.Healthy("default", "w"); probed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("workload never probed")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	if ok, _ := c.Healthy("default", "w"); ok {
		t.Fatal("nothing listens on port 1, yet the workload is healthy")
	}
	c.Update(parseSet(t, strings.TrimPrefix(we, "---\n")))
	for {
		ok, probed := c.Healthy("default", "w")
		if !probed && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("workload still probed after its WorkloadGroup went away")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
