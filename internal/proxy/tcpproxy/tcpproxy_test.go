package tcpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// upperEcho reads until EOF (the client's half-close), then answers with
// the upper-cased input and closes.
func upperEcho(t *testing.T) runtime.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return endpoint(t, l.Addr().String())
}

func endpoint(t *testing.T, addr string) runtime.Endpoint {
	ap := netip.MustParseAddrPort(addr)
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}

// start runs a proxy for clusters on a loopback listener.
func start(t *testing.T, m *Metrics, clusters map[string][]runtime.Endpoint) (*Proxy, string) {
	t.Helper()
	cfg := &runtime.Config{Clusters: map[string]*runtime.Cluster{}}
	l := &runtime.Listener{Name: "tcp", Kind: runtime.ListenerTCP, TCP: &runtime.TCPListener{}}
	for name, eps := range clusters {
		cfg.Clusters[name] = &runtime.Cluster{Name: name, Endpoints: eps, ConnectTimeout: time.Second}
		l.TCP.Clusters = append(l.TCP.Clusters, runtime.WeightedCluster{Name: name, Weight: 1})
	}
	p := New(Options{Metrics: m})
	r := p.Route(cfg, l.Direction, l.TCP, lb.Build(cfg.Clusters))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveRoute(p, ln, r) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		p.Close()
	})
	return p, ln.Addr().String()
}

func TestHalfClose(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := start(t, m, map[string][]runtime.Endpoint{"echo": {upperEcho(t)}})
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("hello trellis")); err != nil {
			t.Fatal(err)
		}
		// The upstream answers only after it sees our EOF: the proxy must
		// forward the half-close and keep the other direction open.
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "HELLO TRELLIS" {
			t.Fatalf("conn %d: read %q, %v; want HELLO TRELLIS", i, got, err)
		}
	}
	// Counters are added when the connection handler finishes; poll.
	deadline := time.Now().Add(5 * time.Second)
	for value(m.closed.WithLabelValues("source", "echo", "-")) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for name, want := range map[string]float64{
		"opened": 3, "closed": 3, "received": 3 * 13, "sent": 3 * 13,
	} {
		c := map[string]*prometheus.CounterVec{"opened": m.opened, "closed": m.closed, "received": m.received, "sent": m.sent}[name]
		if got := value(c.WithLabelValues("source", "echo", "-")); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestFailuresCloseDownstream(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := endpoint(t, closed.Addr().String())
	closed.Close()
	tests := []struct {
		name string
		eps  []runtime.Endpoint
		flag string
	}{
		{"connect failure", []runtime.Endpoint{dead}, "UF"},
		{"no healthy endpoint", nil, "UH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := NewMetrics(prometheus.NewRegistry())
			_, addr := start(t, m, map[string][]runtime.Endpoint{"c": tt.eps})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !strings.Contains(err.Error(), "reset")) {
				t.Fatalf("read = %d, %v; want the proxy to close the connection", n, err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for value(m.closed.WithLabelValues("source", "c", tt.flag)) < 1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := value(m.closed.WithLabelValues("source", "c", tt.flag)); got != 1 {
				t.Errorf("closed{response_flags=%s} = %v, want 1", tt.flag, got)
			}
		})
	}
}

func TestDrainCutsAfterDeadline(t *testing.T) {
	p, addr := start(t, nil, map[string][]runtime.Endpoint{"echo": {upperEcho(t)}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// Wait until the proxy tracks the connection (downstream + upstream).
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.conns)
		p.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy tracks %d conns, want 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain = %v, want deadline exceeded", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("read after drain: %v, want EOF or reset", err)
	}
}

func BenchmarkEcho(b *testing.B) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	defer func() { l.Close(); wg.Wait() }()
	ap := netip.MustParseAddrPort(l.Addr().String())
	cfg := &runtime.Config{Clusters: map[string]*runtime.Cluster{"e": {Name: "e",
		Endpoints: []runtime.Endpoint{{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}}}}}
	p := New(Options{})
	r := p.Route(cfg, runtime.Outbound, &runtime.TCPListener{Clusters: []runtime.WeightedCluster{{Name: "e", Weight: 1}}}, lb.Build(cfg.Clusters))
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { defer close(done); _ = serveRoute(p, pl, r) }()
	defer func() { pl.Close(); <-done; p.Close() }()
	c, err := net.Dial("tcp", pl.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1024)
	buf := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
