package httpproxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// h1Backend is an HTTP/1.1 loopback server that counts connections.
type h1Backend struct {
	ep     runtime.Endpoint
	closed chan struct{} // one value per connection closed
	mu     sync.Mutex
	opened int
	open   map[net.Conn]bool
}

func newH1Backend(t testing.TB, h http.Handler) *h1Backend {
	t.Helper()
	b := &h1Backend{open: map[net.Conn]bool{}, closed: make(chan struct{}, 64)}
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(nc net.Conn, st http.ConnState) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch st {
		case http.StateNew:
			b.opened++
			b.open[nc] = true
		case http.StateClosed, http.StateHijacked:
			delete(b.open, nc)
			b.closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	b.ep = endpointOf(t, s.Listener.Addr().String())
	return b
}

func (b *h1Backend) counts() (opened, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened, len(b.open)
}

// waitClosed waits until the backend has closed n more connections.
func (b *h1Backend) waitClosed(t *testing.T, n int, why string) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for range n {
		select {
		case <-b.closed:
		case <-timeout.C:
			t.Fatalf("timed out waiting: %s", why)
		}
	}
}

func TestH1UpstreamClient(t *testing.T) {
	c := cluster("c", runtime.HTTP1)
	u := &upstream{h1: &http.Transport{}, h2: &http.Transport{}}
	p := NewPools()
	defer func() { _ = p.Close() }()
	p.attach(map[string]*upstream{"c": u}, map[string]*runtime.Cluster{"c": c})
	if _, ok := u.transportForEndpoint(nil, false, false).(*http1.Client); !ok {
		t.Errorf("HTTP/1.1 transport is %T, want *http1.Client", u.transportForEndpoint(nil, false, false))
	}
	if _, ok := u.transportForEndpoint(nil, false, true).(*http.Transport); !ok {
		t.Errorf("upgrade transport is %T, want *http.Transport", u.transportForEndpoint(nil, false, true))
	}
	if !u.exclusive(u.transportForEndpoint(nil, false, false)) {
		t.Error("HTTP/1.1 client is not exclusive (max_connections)")
	}
}

func TestH1UpstreamPoolOptions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pool       runtime.ConnectionPool
		wantOpened int
	}{
		{"keep-alive", runtime.ConnectionPool{}, 1},
		{"one request per connection", runtime.ConnectionPool{MaxRequestsPerConnection: 1}, 3},
		{"two requests per connection", runtime.ConnectionPool{MaxRequestsPerConnection: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newH1Backend(t, okHandler)
			cl := cluster("c", runtime.HTTP1, b.ep)
			cl.Pool = tc.pool
			h := newHandler(t, config([]*runtime.Cluster{cl}, anyHost("c", nil)), Options{})
			for range 3 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("POST", "http://svc/", strings.NewReader("body")))
				if rec.Code != 200 || rec.Body.String() != "ok" {
					t.Fatalf("got %d %q", rec.Code, rec.Body.String())
				}
			}
			if opened, _ := b.counts(); opened != tc.wantOpened {
				t.Errorf("connections opened = %d, want %d", opened, tc.wantOpened)
			}
		})
	}
}

func TestH1UpstreamIdleTimeoutAndConfigChange(t *testing.T) {
	b := newH1Backend(t, okHandler)
	cl := cluster("c", runtime.HTTP1, b.ep)
	cl.Pool.IdleTimeout = 20 * time.Millisecond
	cfg := config([]*runtime.Cluster{cl}, anyHost("c", nil))
	pools := NewPools()
	defer func() { _ = pools.Close() }()
	h := NewHandler(Options{})
	h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil), cfg.Listeners[0])
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://svc/", nil))
	b.waitClosed(t, 1, "idle timeout closes the connection")

	// A cluster that goes away takes its client's connections with it.
	cl2 := cluster("c", runtime.HTTP1, b.ep)
	cfg2 := config([]*runtime.Cluster{cl2}, anyHost("c", nil))
	h.Update(NewConfig(cfg2, lb.Build(cfg2.Clusters), pools, nil), cfg2.Listeners[0])
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://svc/", nil))
	if _, open := b.counts(); open != 1 {
		t.Fatalf("open connections = %d, want 1 idle", open)
	}
	cfg3 := config(nil, anyHost("c", nil))
	NewConfig(cfg3, nil, pools, nil)
	b.waitClosed(t, 1, "the removed cluster's connection is closed")
}

func BenchmarkProxiedPost(b *testing.B) {
	// Istio's default retry policy buffers small request bodies.
	cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, backend(b, okHandler))},
		anyHost("c", func(f *runtime.ForwardAction) {
			f.Retry = &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure", "refused-stream", "unavailable"}}
		}))
	h := newHandler(b, cfg, Options{})
	payload := bytes.Repeat([]byte("x"), 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest("POST", "http://svc/bench", bytes.NewReader(payload))
		req.Header.Set("X-Request-Id", "fixed")
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
	}
}

// TestH1UpstreamRemovedEndpoint removes an endpoint while a request to it
// is in flight: the request completes, and its connection is closed
// instead of pooled for an address no config names any more.
func TestH1UpstreamRemovedEndpoint(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := newH1Backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "slow")
	}))
	other := newH1Backend(t, okHandler)
	pools := NewPools()
	defer func() { _ = pools.Close() }()
	h := NewHandler(Options{})
	apply := func(ep runtime.Endpoint) {
		cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, ep)}, anyHost("c", nil))
		h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil), cfg.Listeners[0])
	}
	apply(slow.ep)
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://svc/", nil))
		done <- rec
	}()
	<-entered
	apply(other.ep) // the same cluster, now without the slow endpoint
	close(release)
	if rec := <-done; rec.Code != 200 || rec.Body.String() != "slow" {
		t.Fatalf("in-flight request: %d %q", rec.Code, rec.Body.String())
	}
	slow.waitClosed(t, 1, "the removed endpoint's connection is closed after its request")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://svc/", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("after the change: %d %q", rec.Code, rec.Body.String())
	}
	if _, open := other.counts(); open != 1 {
		t.Errorf("the remaining endpoint has %d open connections, want 1 pooled", open)
	}
}
