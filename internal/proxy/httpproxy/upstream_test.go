package httpproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// testClock is a settable clock for outlier ejection times.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// upstreamHandler builds a handler over cfg with pools built from opts.
func upstreamHandler(t testing.TB, cfg *runtime.Config, opts PoolOptions, hopts Options) *Handler {
	t.Helper()
	pools := NewPoolsWith(opts)
	t.Cleanup(func() { _ = pools.Close() })
	h := NewHandler(hopts)
	h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil), cfg.Listeners[0])
	return h
}

func oneRoute(f *runtime.ForwardAction) *runtime.VirtualHost {
	return &runtime.VirtualHost{Name: "svc", Domains: []string{"svc"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: f}}}
}

// do sends one request through h and returns the recorder and info.
func doReq(h *Handler, req *http.Request) (*httptest.ResponseRecorder, RequestInfo) {
	var info RequestInfo
	h.onDone = func(_ *http.Request, i *RequestInfo) { info = *i }
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, info
}

func TestCircuitBreakerOverflow(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := cluster("c", runtime.HTTP1, backend(t, slow))
	c.CircuitBreakers = runtime.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1}
	h := upstreamHandler(t, config([]*runtime.Cluster{c}, oneRoute(fwd("c"))), PoolOptions{}, Options{})
	var infos sync.Map
	h.onDone = func(r *http.Request, i *RequestInfo) { infos.Store(r.Header.Get("N"), *i) }

	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "http://svc/", nil)
			req.Header.Set("N", string(rune('a'+i)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		})
		if i == 0 {
			<-entered // the first holds the only connection
		}
	}
	// The second is pending; wait for it to queue, then a third overflows.
	up := h.state.Load().cfg.clusters["c"].ext.state
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, pending := up.Breakers.Active(); pending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second request never queued")
		}
		time.Sleep(time.Millisecond) // polling, bounded
	}
	req := httptest.NewRequest("GET", "http://svc/", nil)
	req.Header.Set("N", "c")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	v, _ := infos.Load("c")
	info := v.(RequestInfo)
	want := "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	if rec.Code != 503 || info.Flags != "UO" || rec.Body.String() != want {
		t.Errorf("overflowing request: %d %q %q; want 503 UO %q", rec.Code, info.Flags, rec.Body.String(), want)
	}
	close(release)
	wg.Wait()
	if diff := cmp.Diff([]int{200, 200}, codes); diff != "" {
		t.Errorf("queued requests (-want +got):\n%s", diff)
	}
}

func TestMaxRetriesOverflow(t *testing.T) {
	c := cluster("c", runtime.HTTP1, backend(t, flaky(100, 503)))
	c.CircuitBreakers = runtime.CircuitBreakers{MaxRetries: 1}
	f := fwd("c")
	f.Retry = &runtime.RetryPolicy{Attempts: 3, RetryOn: []string{"5xx"}, BackOff: runtime.RetryBackOff{Base: time.Millisecond}}
	h := upstreamHandler(t, config([]*runtime.Cluster{c}, oneRoute(f)), PoolOptions{}, Options{})
	// The single retry slot is held by this request for its lifetime, so
	// its second retry overflows: 503 with UO after two attempts.
	rec, info := doReq(h, httptest.NewRequest("GET", "http://svc/", nil))
	if rec.Code != 503 || info.Attempts != 2 || info.Flags != "UO" {
		t.Errorf("got %d after %d attempts, flags %q; want 503 after 2, UO", rec.Code, info.Attempts, info.Flags)
	}
}

func TestOutlierEjection(t *testing.T) {
	bad := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	good := backend(t, echo("good"))
	c := cluster("c", runtime.HTTP1, bad, good)
	c.Outlier = &runtime.OutlierDetection{
		Consecutive5xx: 5, EnforcingConsecutive5xx: 100, Interval: time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 50,
	}
	clk := &testClock{now: time.Unix(1000, 0)}
	h := upstreamHandler(t, config([]*runtime.Cluster{c}, oneRoute(fwd("c"))), PoolOptions{Clock: clk.Now}, Options{})
	badAddr := bad.Address()
	countBad := func(n int) int {
		hits := 0
		for range n {
			_, info := doReq(h, httptest.NewRequest("GET", "http://svc/", nil))
			if info.Upstream == badAddr {
				hits++
			}
		}
		return hits
	}
	// Round robin: 10 requests give the bad host 5 consecutive 503s.
	if got := countBad(10); got != 5 {
		t.Fatalf("bad host got %d of 10 before ejection, want 5", got)
	}
	if got := countBad(20); got != 0 {
		t.Errorf("ejected host got %d of 20", got)
	}
	clk.Advance(30 * time.Second)
	if got := countBad(20); got == 0 {
		t.Errorf("host not restored after base_ejection_time")
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	tests := []struct {
		attempt   int
		base, max time.Duration
		ceil      time.Duration
	}{
		{1, 0, 0, 25 * time.Millisecond},
		{2, 0, 0, 50 * time.Millisecond},
		{5, 0, 0, 250 * time.Millisecond}, // capped at 10 × base
		{3, 10 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond},
	}
	for _, tc := range tests {
		lo, hi := time.Hour, time.Duration(0)
		for range 2000 {
			d := backoffDelay(tc.attempt, tc.base, tc.max)
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: uniform over [0, ceil) plus a millisecond floor.
		if lo < time.Millisecond || hi > tc.ceil+time.Millisecond || hi < tc.ceil/2 {
			t.Errorf("attempt %d base %v max %v: delays in [%v, %v], want within [1ms, %v] and spread", tc.attempt, tc.base, tc.max, lo, hi, tc.ceil+time.Millisecond)
		}
	}
}

func TestRouteTimeoutOrdering(t *testing.T) {
	// The upstream sees its request cancelled before the client gets 504.
	cancelled := make(chan struct{})
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(cancelled)
	}))
	f := fwd("c")
	f.Timeout = 20 * time.Millisecond
	h := upstreamHandler(t, config([]*runtime.Cluster{cluster("c", runtime.HTTP1, up)}, oneRoute(f)), PoolOptions{}, Options{})
	rec, info := doReq(h, httptest.NewRequest("GET", "http://svc/", nil))
	if rec.Code != 504 || info.Flags != "UT" {
		t.Fatalf("got %d %q, want 504 UT", rec.Code, info.Flags)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request never cancelled after the route timeout")
	}
}

func TestHashPolicy(t *testing.T) {
	var eps []runtime.Endpoint
	for _, n := range []string{"a", "b", "c", "d"} {
		eps = append(eps, backend(t, echo(n)))
	}
	for _, policy := range []runtime.LBPolicy{runtime.RingHash, runtime.Maglev} {
		c := cluster("c", runtime.HTTP1, eps...)
		c.LB = policy
		f := fwd("c")
		f.HashPolicy = []runtime.HashPolicy{
			{Kind: runtime.HashHeader, Name: "x-user", Terminal: true},
			{Kind: runtime.HashCookie, Name: "sticky", CookieGenerate: true, CookieTTL: time.Hour, CookiePath: "/"},
		}
		h := upstreamHandler(t, config([]*runtime.Cluster{c}, oneRoute(f)), PoolOptions{}, Options{})
		seenBy := map[string]map[string]bool{}
		for i := range 40 {
			user := string(rune('A' + i%8))
			req := httptest.NewRequest("GET", "http://svc/", nil)
			req.Header.Set("X-User", user)
			_, info := doReq(h, req)
			if seenBy[user] == nil {
				seenBy[user] = map[string]bool{}
			}
			seenBy[user][info.Upstream] = true
		}
		used := map[string]bool{}
		for user, ups := range seenBy {
			if len(ups) != 1 {
				t.Errorf("policy %d: user %s spread over %d endpoints", policy, user, len(ups))
			}
			for u := range ups {
				used[u] = true
			}
		}
		if len(used) < 2 {
			t.Errorf("policy %d: 8 users all on one endpoint", policy)
		}
		// No header: the cookie is generated, set on the response, and
		// keeps later requests on one endpoint.
		rec, first := doReq(h, httptest.NewRequest("GET", "http://svc/", nil))
		sc := rec.Header().Get("Set-Cookie")
		if !strings.HasPrefix(sc, "sticky=") || !strings.Contains(sc, "Max-Age=3600") || !strings.Contains(sc, "Path=/") {
			t.Fatalf("Set-Cookie = %q, want a generated sticky cookie with Max-Age=3600 and Path=/", sc)
		}
		cookie := strings.SplitN(sc, ";", 2)[0]
		for range 10 {
			req := httptest.NewRequest("GET", "http://svc/", nil)
			req.Header.Set("Cookie", cookie)
			rec, info := doReq(h, req)
			if info.Upstream != first.Upstream {
				t.Errorf("cookie %s moved from %s to %s", cookie, first.Upstream, info.Upstream)
			}
			if rec.Header().Get("Set-Cookie") != "" {
				t.Errorf("cookie set again although the request carried it")
			}
		}
	}
}

func TestMirror(t *testing.T) {
	type copyOf struct{ Host, Path, Body string }
	got := make(chan copyOf, 10)
	shadow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- copyOf{r.Host, r.URL.Path, string(b)}
		w.Header().Set("X-Backend", "shadow")
		w.WriteHeader(500)
	}))
	block := make(chan struct{})
	var slowCalls atomic.Int32
	slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowCalls.Add(1)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer close(block)
	primary := backend(t, echo("primary"))
	f := fwd("p")
	f.Mirrors = []runtime.MirrorPolicy{
		{Cluster: "shadow", PerMillion: 1_000_000},
		{Cluster: "slow", PerMillion: 1_000_000},
		{Cluster: "down", PerMillion: 1_000_000},
		{Cluster: "never", PerMillion: 0},
	}
	cfg := config([]*runtime.Cluster{
		cluster("p", runtime.HTTP1, primary), cluster("shadow", runtime.HTTP1, shadow),
		cluster("slow", runtime.HTTP1, slow), cluster("down", runtime.HTTP1, closedEndpoint(t)),
		cluster("never", runtime.HTTP1, shadow),
	}, &runtime.VirtualHost{Name: "svc", Domains: []string{"svc", "svc:8080"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: f}}})
	h := upstreamHandler(t, cfg, PoolOptions{}, Options{})
	for i, body := range []string{"", "hello"} {
		var rb io.Reader
		if body != "" {
			rb = strings.NewReader(body)
		}
		req := httptest.NewRequest("POST", "http://svc:8080/m", rb)
		start := time.Now()
		rec, info := doReq(h, req)
		if rec.Code != 200 || rec.Header().Get("X-Backend") != "primary" || info.Cluster != "p" {
			t.Fatalf("request %d: caller saw %d from %q (cluster %s), want 200 from primary", i, rec.Code, rec.Header().Get("X-Backend"), info.Cluster)
		}
		if s := decode(t, rec.Body); s.Body != body {
			t.Errorf("primary got body %q, want %q", s.Body, body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a slow mirror delayed the primary by %v", d)
		}
		select {
		case c := <-got:
			if diff := cmp.Diff(copyOf{"svc-shadow:8080", "/m", body}, c); diff != "" {
				t.Errorf("mirror copy (-want +got):\n%s", diff)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("mirror never received its copy")
		}
	}
	select {
	case c := <-got:
		t.Errorf("unexpected extra copy %+v (0%% mirror sent?)", c)
	default:
	}
}

func TestMirrorSaturationDrops(t *testing.T) {
	block := make(chan struct{})
	var calls atomic.Int32
	slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer close(block)
	f := fwd("p")
	f.Mirrors = []runtime.MirrorPolicy{{Cluster: "slow", PerMillion: 1_000_000}}
	cfg := config([]*runtime.Cluster{cluster("p", runtime.HTTP1, backend(t, echo("p"))), cluster("slow", runtime.HTTP1, slow)}, oneRoute(f))
	h := upstreamHandler(t, cfg, PoolOptions{MirrorConcurrency: 2}, Options{})
	for range 10 {
		if rec, _ := doReq(h, httptest.NewRequest("GET", "http://svc/", nil)); rec.Code != 200 {
			t.Fatalf("primary answered %d", rec.Code)
		}
	}
	m := h.state.Load().cfg.clusters["slow"].ext.mirrors
	if d := m.dropped.Load(); d != 8 {
		t.Errorf("dropped %d copies, want 8 (10 sent, 2 in flight allowed)", d)
	}
}

// testPKI issues SPIFFE certificates from one root.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert, key, pool}
}

func (p *testPKI) leaf(t *testing.T, id string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type fakeSecrets struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

func (s fakeSecrets) Certificate(name string) (*tls.Certificate, error) {
	if name == "default" {
		return s.cert, nil
	}
	return nil, errors.New("unknown secret")
}

func (s fakeSecrets) Roots(name string) (*x509.CertPool, error) {
	if name == "ROOTCA" {
		return s.roots, nil
	}
	return nil, errors.New("unknown roots")
}

func TestUpstreamTLS(t *testing.T) {
	mesh := newTestPKI(t)
	const serverID = "spiffe://cluster.local/ns/default/sa/echo"
	clientCert := mesh.leaf(t, "spiffe://cluster.local/ns/default/sa/client")
	// An mTLS server that reports the client's SPIFFE ID.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
			id = r.TLS.PeerCertificates[0].URIs[0].String()
		}
		w.Header().Set("X-Peer", id)
	}))
	srv.TLS = &tls.Config{NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{mesh.leaf(t, serverID)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: mesh.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsEP := endpointOf(t, srv.Listener.Addr().String())
	tlsEP.SocketMatch = map[string]string{"tlsMode": "istio"}
	plainEP := backend(t, echo("plain"))
	sec := fakeSecrets{cert: &clientCert, roots: mesh.pool}

	san := func(id string) []runtime.SANMatch {
		return []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: id}}}
	}
	tests := []struct {
		name      string
		ep        runtime.Endpoint
		sans      []runtime.SANMatch
		wantCode  int
		wantFlags string
		wantPeer  string
	}{
		{"auto mTLS to a sidecar, SAN matches", tlsEP, san(serverID), 200, "", "spiffe://cluster.local/ns/default/sa/client"},
		{"SAN mismatch fails the connection", tlsEP, san("spiffe://cluster.local/ns/default/sa/other"), 503, "UF", ""},
		{"endpoint without a sidecar gets plain text", plainEP, san(serverID), 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("c", runtime.HTTP1, tc.ep)
			c.TLSMatches = []runtime.TransportSocketMatch{
				{Name: "tlsMode-istio", Match: map[string]string{"tlsMode": "istio"}, TLS: &runtime.UpstreamTLS{
					SNI: "outbound_.8080_._.echo.default.svc.cluster.local", ALPN: []string{"istio", "http/1.1"},
					CertSecret: "default", RootSecret: "ROOTCA", SubjectAltNames: tc.sans,
				}},
				{Name: "tlsMode-disabled", Match: map[string]string{}},
			}
			h := upstreamHandler(t, config([]*runtime.Cluster{c}, oneRoute(fwd("c"))), PoolOptions{Secrets: sec}, Options{})
			rec, info := doReq(h, httptest.NewRequest("GET", "http://svc/", nil))
			if rec.Code != tc.wantCode || info.Flags != tc.wantFlags || rec.Header().Get("X-Peer") != tc.wantPeer {
				t.Errorf("got %d %q peer %q; want %d %q peer %q (body %q)", rec.Code, info.Flags, rec.Header().Get("X-Peer"),
					tc.wantCode, tc.wantFlags, tc.wantPeer, rec.Body.String())
			}
		})
	}
}

var _ = context.Background
