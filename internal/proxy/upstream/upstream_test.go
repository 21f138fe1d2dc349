package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func endpoints(hosts ...string) []runtime.Endpoint {
	var eps []runtime.Endpoint
	for _, h := range hosts {
		eps = append(eps, runtime.Endpoint{Host: h, Port: 80, Weight: 1, Healthy: true})
	}
	return eps
}

func TestBreakersRequests(t *testing.T) {
	var b Breakers
	b.set(runtime.CircuitBreakers{MaxRequests: 2})
	ctx := context.Background()
	r1, err1 := b.Acquire(ctx, false)
	r2, err2 := b.Acquire(ctx, false)
	_, err3 := b.Acquire(ctx, false)
	if err1 != nil || err2 != nil || !errors.Is(err3, ErrOverflow) {
		t.Fatalf("Acquire errors = %v, %v, %v; want nil, nil, overflow", err1, err2, err3)
	}
	r1()
	if r, err := b.Acquire(ctx, false); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		r()
	}
	r2()
}

func TestBreakersPending(t *testing.T) {
	for _, tc := range []struct {
		name string
		cb   runtime.CircuitBreakers
	}{
		// Istio's circuit-breaking task: maxConnections 1, pending 1.
		{"max connections 1", runtime.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1}},
		// A pending request is not an active one (Envoy checks
		// max_requests when it gets its connection).
		{"and max requests 1", runtime.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) { testBreakersPending(t, tc.cb) })
	}
}

func testBreakersPending(t *testing.T, cb runtime.CircuitBreakers) {
	var b Breakers
	b.set(cb)
	ctx := context.Background()
	first, err := b.Acquire(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	// The second waits in the pending queue...
	got := make(chan error, 1)
	var second func()
	go func() {
		var err error
		second, err = b.Acquire(ctx, true)
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, pending := b.Active(); pending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second request never queued")
		}
		time.Sleep(time.Millisecond) // polling, bounded by deadline
	}
	// ...the third overflows...
	if _, err := b.Acquire(ctx, true); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third Acquire = %v, want overflow", err)
	}
	// ...and the second gets the connection when the first ends.
	first()
	if err := <-got; err != nil {
		t.Fatalf("second Acquire = %v", err)
	}
	second()
	if rq, conns, pending := b.Active(); rq != 0 || conns != 0 || pending != 0 {
		t.Errorf("Active() = %d, %d, %d after all released; want zeros", rq, conns, pending)
	}
}

func TestBreakersPendingCancelled(t *testing.T) {
	var b Breakers
	b.set(runtime.CircuitBreakers{MaxConnections: 1})
	first, _ := b.Acquire(context.Background(), true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Acquire(ctx, true); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with cancelled ctx = %v, want context.Canceled", err)
	}
	first()
	if rq, conns, pending := b.Active(); rq != 0 || conns != 0 || pending != 0 {
		t.Errorf("Active() = %d, %d, %d; want zeros", rq, conns, pending)
	}
}

func TestBreakersRetries(t *testing.T) {
	var b Breakers
	b.set(runtime.CircuitBreakers{}) // Envoy's default: 3 concurrent retries
	var rel []func()
	for range 3 {
		r, ok := b.Retry()
		if !ok {
			t.Fatal("retry refused under the limit")
		}
		rel = append(rel, r)
	}
	if _, ok := b.Retry(); ok {
		t.Error("fourth concurrent retry admitted, want overflow")
	}
	for _, r := range rel {
		r()
	}
	if diff := cmp.Diff(runtime.CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}, b.Limits()); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func outlierCluster(hosts ...string) *runtime.Cluster {
	return &runtime.Cluster{
		Name: "c", Endpoints: endpoints(hosts...),
		Outlier: &runtime.OutlierDetection{
			Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
			EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocalOriginFailure: 100,
			Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
			MaxEjectionPercent: 100,
		},
	}
}

func picked(c *Cluster, n int) map[string]int {
	out := map[string]int{}
	for range n {
		r, ok := c.Pick()
		if !ok {
			out["<none>"]++
			continue
		}
		out[r.Endpoint.Host]++
		r.Done()
	}
	return out
}

func TestOutlierEjectAndReturn(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var events []string
	s := NewSet(Options{Clock: clk.Now, OnEject: func(cl, addr string, ej bool) {
		events = append(events, map[bool]string{true: "eject ", false: "return "}[ej]+addr)
	}})
	c := s.Update(map[string]*runtime.Cluster{"c": outlierCluster("a", "b")})["c"]

	// 1. Four 5xx and a success: no ejection (consecutive only).
	for range 4 {
		c.Report("a:80", Outcome{Status: 500})
	}
	c.Report("a:80", Outcome{Status: 200})
	c.Report("a:80", Outcome{Status: 503})
	if len(c.Ejected()) != 0 {
		t.Fatalf("ejected after non-consecutive failures: %v", c.Ejected())
	}
	// 2. Five in a row eject a.
	for range 4 {
		c.Report("a:80", Outcome{Status: 503})
	}
	if diff := cmp.Diff(map[string]bool{"a:80": true}, c.Ejected()); diff != "" {
		t.Fatalf("ejected (-want +got):\n%s", diff)
	}
	if got := picked(c, 50); got["a"] != 0 {
		t.Errorf("ejected host picked %d times", got["a"])
	}
	// 3. It stays out until base_ejection_time has passed...
	clk.Advance(29 * time.Second)
	if got := picked(c, 10); got["a"] != 0 {
		t.Errorf("host back before its ejection time: %v", got)
	}
	// ...then returns.
	clk.Advance(time.Second)
	if got := picked(c, 50); got["a"] == 0 {
		t.Errorf("host not back after its ejection time: %v", got)
	}
	// 4. A second ejection soon after lasts twice as long.
	for range 5 {
		c.Report("a:80", Outcome{Local: LocalConnectFailure}) // counts as 503 without the split
	}
	clk.Advance(59 * time.Second)
	if len(c.Ejected()) != 1 {
		t.Fatalf("second ejection ended before 2 × base")
	}
	clk.Advance(time.Second)
	if len(c.Ejected()) != 0 {
		t.Fatalf("second ejection still on after 2 × base")
	}
	want := []string{"eject a:80", "return a:80", "eject a:80", "return a:80"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestOutlierRules(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*runtime.OutlierDetection)
		outcomes []Outcome
		want     bool // ejected
	}{
		{"gateway errors not enforced by default", func(o *runtime.OutlierDetection) { o.Consecutive5xx = 0 },
			repeat(Outcome{Status: 502}, 5), false},
		{"gateway errors enforced", func(o *runtime.OutlierDetection) { o.Consecutive5xx = 0; o.EnforcingConsecutiveGatewayFailure = 100 },
			repeat(Outcome{Status: 504}, 5), true},
		{"500 is not a gateway error", func(o *runtime.OutlierDetection) { o.Consecutive5xx = 0; o.EnforcingConsecutiveGatewayFailure = 100 },
			repeat(Outcome{Status: 500}, 5), false},
		{"split: local failures count apart", func(o *runtime.OutlierDetection) { o.SplitExternalLocalOriginErrors = true },
			repeat(Outcome{Local: LocalTimeout}, 5), true},
		{"split: a connection success resets", func(o *runtime.OutlierDetection) { o.SplitExternalLocalOriginErrors = true },
			append(repeat(Outcome{Local: LocalReset}, 4), Outcome{Local: LocalSuccess}, Outcome{Local: LocalReset}), false},
		{"split: 5xx still counts", func(o *runtime.OutlierDetection) { o.SplitExternalLocalOriginErrors = true },
			repeat(Outcome{Status: 500}, 5), true},
		{"enforcing 0", func(o *runtime.OutlierDetection) { o.EnforcingConsecutive5xx = 0 },
			repeat(Outcome{Status: 500}, 10), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := outlierCluster("a", "b")
			tc.edit(rc.Outlier)
			s := NewSet(Options{Clock: (&fakeClock{now: time.Unix(1, 0)}).Now})
			c := s.Update(map[string]*runtime.Cluster{"c": rc})["c"]
			for _, o := range tc.outcomes {
				c.Report("a:80", o)
			}
			if got := c.Ejected()["a:80"]; got != tc.want {
				t.Errorf("ejected = %v, want %v", got, tc.want)
			}
		})
	}
}

func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	rc := outlierCluster("a", "b", "c", "d")
	rc.Outlier.MaxEjectionPercent = 10 // Envoy's default: one host may always go
	s := NewSet(Options{Clock: (&fakeClock{now: time.Unix(1, 0)}).Now})
	c := s.Update(map[string]*runtime.Cluster{"c": rc})["c"]
	for _, h := range []string{"a:80", "b:80"} {
		for range 5 {
			c.Report(h, Outcome{Status: 503})
		}
	}
	if diff := cmp.Diff(map[string]bool{"a:80": true}, c.Ejected()); diff != "" {
		t.Errorf("ejected (-want +got):\n%s", diff)
	}
}

func TestOutlierStateSurvivesConfig(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1, 0)}
	s := NewSet(Options{Clock: clk.Now})
	c := s.Update(map[string]*runtime.Cluster{"c": outlierCluster("a", "b")})["c"]
	for range 5 {
		c.Report("a:80", Outcome{Status: 503})
	}
	c2 := s.Update(map[string]*runtime.Cluster{"c": outlierCluster("a", "b", "z")})["c"]
	if c2 != c {
		t.Fatal("Update made a new Cluster for the same name")
	}
	if !c2.Ejected()["a:80"] {
		t.Error("ejection lost across a config update")
	}
	if got := picked(c2, 60); got["a"] != 0 || got["z"] == 0 {
		t.Errorf("picks after update = %v, want b and z only", got)
	}
}

// pki is a test CA issuing leaf certificates.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{cert: cert, key: key, pool: pool}
}

func (p *pki) leaf(t *testing.T, spiffe string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(spiffe)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// secrets is a fake runtime.Secrets.
type secrets struct {
	certs map[string]*tls.Certificate
	roots map[string]*x509.CertPool
}

func (s secrets) Certificate(name string) (*tls.Certificate, error) {
	if c := s.certs[name]; c != nil {
		return c, nil
	}
	return nil, errors.New("no such certificate")
}

func (s secrets) Roots(name string) (*x509.CertPool, error) {
	if r := s.roots[name]; r != nil {
		return r, nil
	}
	return nil, errors.New("no such roots")
}

func TestClientTLS(t *testing.T) {
	mesh, other := newPKI(t), newPKI(t)
	const server = "spiffe://cluster.local/ns/default/sa/reviews"
	const client = "spiffe://cluster.local/ns/default/sa/productpage"
	sec := secrets{
		certs: map[string]*tls.Certificate{"default": mesh.leaf(t, client)},
		roots: map[string]*x509.CertPool{"ROOTCA": mesh.pool, "other": other.pool},
	}
	exact := func(v string) runtime.StringMatch { return runtime.StringMatch{Kind: runtime.MatchExact, Value: v} }
	tests := []struct {
		name    string
		tls     runtime.UpstreamTLS
		wantErr string
	}{
		{"mTLS with matching SAN", runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA",
			SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: exact(server)}}}, ""},
		{"SAN mismatch", runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA",
			SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: exact("spiffe://cluster.local/ns/default/sa/ratings")}}}, "match none"},
		{"DNS SAN type does not match a URI", runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA",
			SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANDNS, Match: exact(server)}}}, "match none"},
		{"untyped SAN matcher", runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA",
			SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANAny, Match: runtime.StringMatch{Kind: runtime.MatchPrefix, Value: "spiffe://cluster.local/"}}}}, ""},
		{"server from another CA", runtime.UpstreamTLS{CertSecret: "default", RootSecret: "other"}, "verify server certificate"},
		{"no validation: accept any", runtime.UpstreamTLS{CertSecret: "default"}, ""},
		{"missing client certificate secret", runtime.UpstreamTLS{CertSecret: "nope", RootSecret: "ROOTCA"}, "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srvCfg := &tls.Config{
				Certificates: []tls.Certificate{*mesh.leaf(t, server)},
				ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: mesh.pool,
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var wg sync.WaitGroup
			wg.Go(func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
				c.Close()
			})
			defer wg.Wait()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
			tc.tls.SNI = "outbound_.9080_._.reviews.default.svc.cluster.local"
			c := tls.Client(raw, ClientTLS(&tc.tls, sec))
			err = c.Handshake()
			if err == nil {
				// TLS 1.3: a server rejecting our certificate says so on
				// the first read.
				_, _ = c.Write([]byte("x"))
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("handshake: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("handshake error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSocketFor(t *testing.T) {
	mtls := &runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA"}
	simple := &runtime.UpstreamTLS{SNI: "x"}
	c := &runtime.Cluster{
		TLS: simple,
		TLSMatches: []runtime.TransportSocketMatch{
			{Name: "tlsMode-istio", Match: map[string]string{"tlsMode": "istio"}, TLS: mtls},
			{Name: "tlsMode-disabled", Match: map[string]string{}},
		},
	}
	sidecar := &runtime.Endpoint{SocketMatch: map[string]string{"tlsMode": "istio", "other": "x"}}
	plain := &runtime.Endpoint{}
	if got := SocketFor(c, sidecar); got != mtls {
		t.Errorf("endpoint with a sidecar: got %+v, want mTLS", got)
	}
	if got := SocketFor(c, plain); got != nil {
		t.Errorf("endpoint without a sidecar: got %+v, want plain text", got)
	}
	c.TLSMatches = c.TLSMatches[:1]
	if got := SocketFor(c, plain); got != simple {
		t.Errorf("no match falls back to transport_socket: got %+v", got)
	}
	if Key(mtls) == Key(simple) || Key(nil) != "" {
		t.Errorf("Key does not tell settings apart")
	}
}

// TestSlowStart checks which hosts ramp up: those added by a later config
// of a slow-start cluster; not those of its first config, nor those present
// when a config turns slow start on.
func TestSlowStart(t *testing.T) {
	// The picker weighs ramping hosts by the wall clock (lb), the set
	// decides who ramps by its Clock: start that at the wall clock.
	clk := &fakeClock{now: time.Now()}
	s := NewSet(Options{Clock: clk.Now})
	slow := func(hosts ...string) *runtime.Cluster {
		c := &runtime.Cluster{Name: "c", Endpoints: endpoints(hosts...)}
		c.LBConfig.SlowStart = &runtime.SlowStart{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 1}
		return c
	}
	plain := func(hosts ...string) *runtime.Cluster {
		return &runtime.Cluster{Name: "c", Endpoints: endpoints(hosts...)}
	}
	c := s.Update(map[string]*runtime.Cluster{"c": slow("a", "b")})["c"]
	if got := picked(c, 300); got["a"] < 100 || got["b"] < 100 {
		t.Errorf("first config picks = %v, want a and b alike (warm)", got)
	}
	s.Update(map[string]*runtime.Cluster{"c": slow("a", "b", "n")})
	if got := picked(c, 300); got["n"] >= 30 {
		t.Errorf("picks right after n was added = %v, want n at about 1%% of its share", got)
	}
	clk.Advance(10 * time.Second)
	if got := picked(c, 300); got["n"] != 100 {
		t.Errorf("picks after the window = %v, want 100 each", got)
	}
	s.Update(map[string]*runtime.Cluster{"c": plain("a", "b")})
	s.Update(map[string]*runtime.Cluster{"c": plain("a", "b", "m")})
	s.Update(map[string]*runtime.Cluster{"c": slow("a", "b", "m")})
	if got := picked(c, 300); got["m"] != 100 {
		t.Errorf("picks once slow start is turned on = %v, want 100 each (all warm)", got)
	}
}
