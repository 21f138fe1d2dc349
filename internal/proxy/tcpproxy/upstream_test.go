package tcpproxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	ups "github.com/trellis-mesh/trellis/internal/proxy/upstream"
)

// testCA issues leaf certificates with one SPIFFE URI SAN.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca *testCA) leaf(t *testing.T, spiffe string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(spiffe)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeSecrets is a runtime.Secrets over fixed maps.
type fakeSecrets struct {
	certs map[string]*tls.Certificate
	roots map[string]*x509.CertPool
}

func (s fakeSecrets) Certificate(name string) (*tls.Certificate, error) {
	if c := s.certs[name]; c != nil {
		return c, nil
	}
	return nil, errors.New("no such certificate")
}

func (s fakeSecrets) Roots(name string) (*x509.CertPool, error) {
	if r := s.roots[name]; r != nil {
		return r, nil
	}
	return nil, errors.New("no such roots")
}

// serveUpper runs upper-casing echo on l (as upperEcho does) until the test
// ends; the handshake of a TLS listener runs in the handler.
func serveUpper(t *testing.T, l net.Listener) runtime.Endpoint {
	t.Helper()
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
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				b, _ := io.ReadAll(c)
				_, _ = c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return endpoint(t, l.Addr().String())
}

// startCluster runs a proxy for one cluster "c" whose picker is shared
// upstream state, as the listener manager wires it.
func startCluster(t *testing.T, c *runtime.Cluster, opts Options) (addr string, state *ups.Cluster) {
	t.Helper()
	c.Name = "c"
	cfg := &runtime.Config{Clusters: map[string]*runtime.Cluster{"c": c}}
	states := ups.NewSet(ups.Options{}).Update(cfg.Clusters)
	l := &runtime.Listener{Name: "tcp", Kind: runtime.ListenerTCP, TCP: &runtime.TCPListener{
		Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}},
	}}
	p := New(opts)
	r := p.Route(cfg, l.Direction, l.TCP, map[string]lb.Picker{"c": states["c"]})
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
	return ln.Addr().String(), states["c"]
}

// roundTrip sends msg, half-closes and returns what comes back before EOF.
func roundTrip(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	return string(got), err
}

// waitCount polls a counter until it reaches want (bounded).
func waitCount(t *testing.T, c prometheus.Counter, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for value(c) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(c); got != want {
		t.Errorf("counter = %v, want %v", got, want)
	}
}

// TestUpstreamAutoMTLS: transport_socket_matches pick mTLS for endpoints
// labelled tlsMode: istio (Istio's auto mTLS) with the server's SAN
// verified; a SAN mismatch is a connect failure (UF).
func TestUpstreamAutoMTLS(t *testing.T) {
	ca := newTestCA(t)
	const serverID = "spiffe://cluster.local/ns/default/sa/server"
	serverCfg := &tls.Config{
		Certificates: []tls.Certificate{*ca.leaf(t, serverID)},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.pool(),
	}
	tl, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	mtlsEP := serveUpper(t, tl)
	mtlsEP.SocketMatch = map[string]string{"tlsMode": "istio"}
	secrets := fakeSecrets{
		certs: map[string]*tls.Certificate{"default": ca.leaf(t, "spiffe://cluster.local/ns/default/sa/client")},
		roots: map[string]*x509.CertPool{"ROOTCA": ca.pool()},
	}
	san := func(id string) []runtime.SANMatch {
		return []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: id}}}
	}
	cluster := func(sans []runtime.SANMatch, eps ...runtime.Endpoint) *runtime.Cluster {
		return &runtime.Cluster{Endpoints: eps, ConnectTimeout: 5 * time.Second, TLSMatches: []runtime.TransportSocketMatch{
			{Name: "tlsMode-istio", Match: map[string]string{"tlsMode": "istio"},
				TLS: &runtime.UpstreamTLS{CertSecret: "default", RootSecret: "ROOTCA", SubjectAltNames: sans, ALPN: []string{"istio"}}},
			{Name: "tlsMode-disabled", Match: map[string]string{}},
		}}
	}
	tests := []struct {
		name    string
		cluster *runtime.Cluster
		want    string // "" : closed with UF
	}{
		{"istio endpoint gets mTLS", cluster(san(serverID), mtlsEP), "HELLO"},
		{"plain endpoint stays plain text", cluster(san(serverID), upperEcho(t)), "HELLO"},
		{"server SAN mismatch", cluster(san("spiffe://cluster.local/ns/default/sa/other"), mtlsEP), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := NewMetrics(prometheus.NewRegistry())
			addr, _ := startCluster(t, tc.cluster, Options{Metrics: m, Secrets: secrets})
			got, _ := roundTrip(t, addr, "hello")
			if got != tc.want {
				t.Fatalf("echo = %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				waitCount(t, m.closed.WithLabelValues("source", "c", "UF"), 1)
			}
		})
	}
}

// TestMaxConnections: a connection beyond max_connections is closed and
// counted with flag UO; a freed slot admits the next one.
func TestMaxConnections(t *testing.T) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	addr, state := startCluster(t, &runtime.Cluster{Endpoints: []runtime.Endpoint{upperEcho(t)},
		CircuitBreakers: runtime.CircuitBreakers{MaxConnections: 1}}, Options{Metrics: m})
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The held connection owns the slot once the proxy has opened upstream.
	waitCount(t, m.opened.WithLabelValues("source", "c", "-"), 1)
	if got, _ := roundTrip(t, addr, "over"); got != "" {
		t.Fatalf("overflowing connection answered %q, want a close", got)
	}
	waitCount(t, m.closed.WithLabelValues("source", "c", "UO"), 1)
	held.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, conns, _ := state.Breakers.Active(); conns == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := roundTrip(t, addr, "again"); got != "AGAIN" {
		t.Fatalf("after the slot was freed: %q, %v; want AGAIN", got, err)
	}
}

// TestConnectFailuresEject: connect failures and connect timeouts are
// local-origin failures for outlier detection, counted as 5xx without the
// split and on their own with it.
func TestConnectFailuresEject(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := endpoint(t, closed.Addr().String())
	closed.Close()
	// A peer that accepts but never finishes a TLS handshake: the connect
	// timeout covers the handshake.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	stalled := endpoint(t, silent.Addr().String())
	stalled.SocketMatch = map[string]string{"tlsMode": "istio"}
	withTLS := []runtime.TransportSocketMatch{{Match: map[string]string{"tlsMode": "istio"}, TLS: &runtime.UpstreamTLS{}}}

	tests := []struct {
		name    string
		ep      runtime.Endpoint
		outlier runtime.OutlierDetection
		tls     []runtime.TransportSocketMatch
	}{
		{"connect failure as 5xx", dead, runtime.OutlierDetection{Consecutive5xx: 2, EnforcingConsecutive5xx: 100}, nil},
		{"connect failure, split", dead, runtime.OutlierDetection{SplitExternalLocalOriginErrors: true,
			ConsecutiveLocalOriginFailure: 2, EnforcingConsecutiveLocalOriginFailure: 100}, nil},
		{"handshake timeout, split", stalled, runtime.OutlierDetection{SplitExternalLocalOriginErrors: true,
			ConsecutiveLocalOriginFailure: 2, EnforcingConsecutiveLocalOriginFailure: 100}, withTLS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			od := tc.outlier
			od.BaseEjectionTime, od.MaxEjectionPercent, od.Interval = time.Minute, 100, time.Second
			m, _ := NewMetrics(prometheus.NewRegistry())
			addr, state := startCluster(t, &runtime.Cluster{Endpoints: []runtime.Endpoint{tc.ep},
				ConnectTimeout: 200 * time.Millisecond, Outlier: &od, TLSMatches: tc.tls}, Options{Metrics: m})
			for i := range 2 {
				start := time.Now()
				if got, _ := roundTrip(t, addr, "x"); got != "" {
					t.Fatalf("attempt %d answered %q", i, got)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("attempt %d took %v; the connect timeout is 200ms", i, d)
				}
				waitCount(t, m.closed.WithLabelValues("source", "c", "UF"), float64(i+1))
			}
			if ej := state.Ejected(); !ej[tc.ep.Address()] {
				t.Errorf("ejected = %v, want %s", ej, tc.ep.Address())
			}
		})
	}
}
