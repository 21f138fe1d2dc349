package listener

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/internal/proxy/httpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freeAddr returns a loopback address:port nothing listens on.
func freeAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return netip.MustParseAddrPort(l.Addr().String())
}

// upstream serves name on a loopback port; block, when non-nil, holds
// requests to /slow until it is closed and reports their arrival.
func upstream(t *testing.T, name string, arrived chan<- struct{}, block <-chan struct{}) runtime.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" && block != nil {
			arrived <- struct{}{}
			<-block
		}
		_, _ = io.WriteString(w, name)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	ap := netip.MustParseAddrPort(l.Addr().String())
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}

func httpListener(name string, addr netip.AddrPort) *runtime.Listener {
	return &runtime.Listener{Name: name, Address: addr, Kind: runtime.ListenerHTTP,
		HTTP: &runtime.HTTPListener{RouteName: "rt"}}
}

// cfgTo returns a config whose listeners all route every request to the
// cluster "c" made of ep.
func cfgTo(version string, ep runtime.Endpoint, listeners ...*runtime.Listener) *runtime.Config {
	return &runtime.Config{
		Version:   version,
		Listeners: listeners,
		Routes: map[string]*runtime.RouteTable{"rt": {Name: "rt", VirtualHosts: []*runtime.VirtualHost{{
			Name: "any", Domains: []string{"*"}, Routes: []*runtime.Route{{
				Name:    "all",
				Match:   runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/"},
				Forward: &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}}},
			}},
		}}}},
		Clusters: map[string]*runtime.Cluster{"c": {Name: "c", Endpoints: []runtime.Endpoint{ep}}},
	}
}

func newManager(t *testing.T, drain time.Duration) *Manager {
	t.Helper()
	m, err := New(Options{DrainTimeout: drain, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestApplySwapsUnderLoad(t *testing.T) {
	a, b := upstream(t, "a", nil, nil), upstream(t, "b", nil, nil)
	addr := freeAddr(t)
	m := newManager(t, time.Second)
	l := httpListener("l", addr)
	if err := m.Apply(cfgTo("0", a, l)); err != nil {
		t.Fatal(err)
	}
	if !m.Ready() {
		t.Fatal("not ready after the first Apply")
	}
	const (
		workers  = 4
		requests = 2000
		swaps    = 20
	)
	var done, failures atomic.Int64
	var seenA, seenB atomic.Int64
	var firstErr atomic.Value
	progress := make(chan struct{}, requests)
	c := client(t)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Add(1) <= requests {
				body, err := get(c, "http://"+addr.String()+"/")
				switch {
				case err != nil:
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				case body == "a":
					seenA.Add(1)
				case body == "b":
					seenB.Add(1)
				}
				progress <- struct{}{}
			}
		}()
	}
	// Swap the route's cluster every requests/swaps completed requests.
	completed := 0
	for i := 1; i <= swaps; i++ {
		for completed < i*requests/(swaps+1) {
			<-progress
			completed++
		}
		ep := a
		if i%2 == 1 {
			ep = b
		}
		// A fresh listener value each time, as compile produces.
		if err := m.Apply(cfgTo(fmt.Sprint(i), ep, httpListener("l", addr))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during %d swaps; first: %v", n, requests, swaps, firstErr.Load())
	}
	if seenA.Load() == 0 || seenB.Load() == 0 {
		t.Errorf("saw a=%d b=%d; want both clusters served", seenA.Load(), seenB.Load())
	}
	if got := m.Current().Version; got != fmt.Sprint(swaps) {
		t.Errorf("Current().Version = %q, want %q", got, fmt.Sprint(swaps))
	}
}

func TestRemovedListenerDrainsInFlight(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := upstream(t, "up", arrived, release)
	keep, gone := freeAddr(t), freeAddr(t)
	m := newManager(t, 10*time.Second)
	if err := m.Apply(cfgTo("1", up, httpListener("keep", keep), httpListener("gone", gone))); err != nil {
		t.Fatal(err)
	}
	c := client(t)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		body, err := get(c, "http://"+gone.String()+"/slow")
		res <- result{body, err}
	}()
	<-arrived // the request is in flight upstream
	if err := m.Apply(cfgTo("2", up, httpListener("keep", keep))); err != nil {
		t.Fatal(err)
	}
	// The removed listener no longer accepts...
	if conn, err := net.DialTimeout("tcp", gone.String(), time.Second); err == nil {
		conn.Close()
		t.Error("removed listener still accepts connections")
	}
	// ...the kept one does...
	if body, err := get(c, "http://"+keep.String()+"/"); err != nil || body != "up" {
		t.Errorf("kept listener: %q, %v", body, err)
	}
	// ...and the in-flight request completes.
	close(release)
	r := <-res
	if r.err != nil || r.body != "up" {
		t.Errorf("in-flight request on the removed listener: %q, %v; want it to complete", r.body, r.err)
	}
	statuses := m.Statuses()
	if len(statuses) != 1 || statuses[0].Name != "keep" || !statuses[0].Bound {
		t.Errorf("Statuses() = %+v, want only keep, bound", statuses)
	}
}

func TestDrainIsBounded(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	up := upstream(t, "up", arrived, release)
	addr := freeAddr(t)
	m := newManager(t, 50*time.Millisecond)
	if err := m.Apply(cfgTo("1", up, httpListener("l", addr))); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := get(client(t), "http://"+addr.String()+"/slow"); errc <- err }()
	<-arrived
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the drain timeout")
	}
	if err := <-errc; err == nil {
		t.Error("request outliving the drain timeout succeeded; want it cut")
	}
}

func TestBindErrorIsReported(t *testing.T) {
	up := upstream(t, "up", nil, nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := netip.MustParseAddrPort(taken.Addr().String())
	ok := freeAddr(t)
	m := newManager(t, time.Second)
	err = m.Apply(cfgTo("1", up, httpListener("busy", busy), httpListener("ok", ok)))
	if err == nil || !strings.Contains(err.Error(), "listener busy: bind") {
		t.Fatalf("Apply = %v, want a bind error for listener busy", err)
	}
	if m.Ready() {
		t.Error("Ready() with a listener unbound")
	}
	if body, err := get(client(t), "http://"+ok.String()+"/"); err != nil || body != "up" {
		t.Errorf("the other listener: %q, %v; want it served", body, err)
	}
	var busyStatus Status
	for _, s := range m.Statuses() {
		if s.Name == "busy" {
			busyStatus = s
		}
	}
	if busyStatus.Bound || busyStatus.Error == "" {
		t.Errorf("status of busy = %+v, want unbound with an error", busyStatus)
	}
	// Once the address frees up, the next Apply binds it.
	taken.Close()
	if err := m.Apply(cfgTo("2", up, httpListener("busy", busy), httpListener("ok", ok))); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if !m.Ready() {
		t.Error("not ready after all listeners bound")
	}
}

func TestKindChangeRebinds(t *testing.T) {
	up := upstream(t, "up", nil, nil)
	addr := freeAddr(t)
	m := newManager(t, time.Second)
	if err := m.Apply(cfgTo("1", up, httpListener("l", addr))); err != nil {
		t.Fatal(err)
	}
	if body, err := get(client(t), "http://"+addr.String()+"/"); err != nil || body != "up" {
		t.Fatalf("http: %q, %v", body, err)
	}
	cfg := cfgTo("2", up, &runtime.Listener{Name: "l", Address: addr, Kind: runtime.ListenerTCP,
		TCP: &runtime.TCPListener{Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}}}})
	if err := m.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	// Through tcp_proxy the upstream HTTP server answers a raw request.
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil || !strings.HasSuffix(string(b), "up") {
		t.Errorf("tcp: %q, %v", b, err)
	}
}

func TestApplyAfterClose(t *testing.T) {
	m := newManager(t, time.Second)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	err := m.Apply(&runtime.Config{})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Apply after Close = %v, want an error", err)
	}
}

// TestClientLeavingIsDC: a downstream HTTP/1.1 client that closes while
// its request waits on the upstream cancels the request (the server
// watches a request that runs long enough), recorded as Envoy's DC.
func TestClientLeavingIsDC(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	up := upstream(t, "up", arrived, release)
	addr := freeAddr(t)
	flags := make(chan string, 1)
	m, err := New(Options{DrainTimeout: time.Second, OnRequest: func(_ *http.Request, info *httpproxy.RequestInfo) {
		flags <- info.Flags
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Apply(cfgTo("1", up, httpListener("l", addr))); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-arrived
	_ = c.Close()
	select {
	case f := <-flags:
		if f != "DC" {
			t.Errorf("flags %q, want DC", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request outlived its client")
	}
}
