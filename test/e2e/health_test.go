package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// healthServer is a workload's health endpoint whose answer the test
// switches: 200 while healthy, 503 while not.
type healthServer struct {
	port int
	ok   atomic.Bool
	srv  *http.Server
	wg   sync.WaitGroup
}

// startHealthServer listens on ip with an ephemeral port; it stops when the
// test ends.
func startHealthServer(t *testing.T, ip string) *healthServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{port: ln.Addr().(*net.TCPAddr).Port}
	h.ok.Store(true)
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !h.ok.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	h.wg.Go(func() { _ = h.srv.Serve(ln) })
	t.Cleanup(func() { _ = h.srv.Close(); h.wg.Wait() })
	return h
}

// workloadGroupYAML probes the echo workload of one version on its own
// health port, every second, flipping after one result.
func workloadGroupYAML(version string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: echo-%[1]s
  namespace: default
spec:
  metadata:
    labels: {app: echo, version: %[1]s}
  template: {serviceAccount: echo}
  probe:
    periodSeconds: 1
    timeoutSeconds: 1
    successThreshold: 1
    failureThreshold: 1
    httpGet: {path: /healthz, port: %[2]d}
---
`, version, port)
}

// workloadHealth reads trellisd's trellisd_workload_healthy gauge for
// default/name: 1, 0, or -1 when absent.
func (m *mesh) workloadHealth(name string) (float64, error) {
	body, err := httpGet(context.Background(), "http://"+m.monAddr+"/metrics")
	if err != nil {
		return -1, err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "trellisd_workload_healthy{") || !strings.Contains(line, `workload="`+name+`"`) {
			continue
		}
		return strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
	}
	return -1, nil
}

func (m *mesh) waitWorkloadHealth(t *testing.T, name string, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("trellisd to see %s with health %v", name, want), readyTimeout, func() error {
		got, err := m.workloadHealth(name)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("trellisd_workload_healthy{workload=%q} = %v", name, got)
		}
		return nil
	}, m.all()...)
}

// TestActiveHealthChecks: a WorkloadGroup probe that starts failing takes
// its workload out of the client's load balancing; when it passes again,
// traffic comes back (issue 3, point 4).
func TestActiveHealthChecks(t *testing.T) {
	m := startMesh(t, meshOptions{})
	c := m.egressClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hv1 := startHealthServer(t, m.bl.ip(hostEchoV1))
	hv2 := startHealthServer(t, m.bl.ip(hostEchoV2))
	writeFile(t, m.dir, "health.yaml", workloadGroupYAML("v1", hv1.port)+workloadGroupYAML("v2", hv2.port))
	m.waitWorkloadHealth(t, "echo-v1", 1)
	m.waitWorkloadHealth(t, "echo-v2", 1)

	// answeredBy sends n requests and counts who answered; errors count
	// under "error".
	answeredBy := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			r, err := getEcho(ctx, c, echoURL(portHTTP, "/health-check"))
			if err != nil {
				got["error"]++
				continue
			}
			got[r.Name]++
		}
		return got
	}

	t.Run("unhealthy endpoint gets no traffic", func(t *testing.T) {
		hv2.ok.Store(false)
		m.waitWorkloadHealth(t, "echo-v2", 0)
		// The EDS push reaches the client sidecar shortly after; wait
		// until a run of requests sees only echo-v1, then measure.
		waitFor(t, "traffic to leave echo-v2", readyTimeout, func() error {
			if got := answeredBy(20); got["echo-v1"] != 20 {
				return fmt.Errorf("20 requests answered by %v", got)
			}
			return nil
		}, m.all()...)
		if got := answeredBy(100); got["echo-v1"] != 100 {
			t.Errorf("100 requests with echo-v2 unhealthy answered by %v, want all by echo-v1", got)
		}
	})

	t.Run("endpoint comes back when its probe passes", func(t *testing.T) {
		hv2.ok.Store(true)
		m.waitWorkloadHealth(t, "echo-v2", 1)
		waitFor(t, "traffic to reach echo-v2 again", readyTimeout, func() error {
			if got := answeredBy(20); got["echo-v2"] == 0 || got["error"] > 0 {
				return fmt.Errorf("20 requests answered by %v", got)
			}
			return nil
		}, m.all()...)
	})
}
