package listener

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/httpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	"github.com/trellis-mesh/trellis/internal/proxy/secrets"
)

// tlsEnv is a CA, a server certificate and the manager's secrets.
type tlsEnv struct {
	ca      *testCA
	secrets *fakeSecrets
	seen    chan *tls.ConnectionState // r.TLS of each request the proxy served
}

func newTLSEnv(t *testing.T) *tlsEnv {
	ca := newCA(t, "mesh")
	_, _, server := ca.issue(t, leaf{dns: []string{"gw.example.com"}, uri: "spiffe://cluster.local/ns/default/sa/server"})
	return &tlsEnv{
		ca:      ca,
		secrets: &fakeSecrets{certs: map[string]tls.Certificate{"default": server}, roots: map[string]*x509.CertPool{"ROOTCA": ca.pool}},
		seen:    make(chan *tls.ConnectionState, 100),
	}
}

func (e *tlsEnv) manager(t *testing.T, s runtime.Secrets) *Manager {
	t.Helper()
	m, err := New(Options{
		DrainTimeout: time.Second, Registerer: prometheus.NewRegistry(), Secrets: s,
		OnRequest: func(r *http.Request, _ *httpproxy.RequestInfo) {
			select {
			case e.seen <- r.TLS:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// mtlsChain terminates TLS with the "default" certificate, verifying
// clients against ROOTCA.
func mtlsChain(name string, require bool, m runtime.FilterChainMatch) *runtime.FilterChain {
	return &runtime.FilterChain{
		Name: name, Match: m, Kind: runtime.ListenerHTTP, HTTP: &runtime.HTTPListener{RouteName: "rt"},
		TLS: &runtime.DownstreamTLS{CertSecrets: []string{"default"}, RootSecret: "ROOTCA", RequireClientCert: require, ALPN: []string{"h2", "http/1.1"}},
	}
}

func plainChain(m runtime.FilterChainMatch) *runtime.FilterChain {
	return &runtime.FilterChain{Name: "plain", Match: m, Kind: runtime.ListenerHTTP, HTTP: &runtime.HTTPListener{RouteName: "rt"}}
}

func chainListener(addr netip.AddrPort, chains ...*runtime.FilterChain) *runtime.Listener {
	return &runtime.Listener{
		Name: "l", Address: addr, Direction: runtime.Inbound, Kind: chains[0].Kind, HTTP: chains[0].HTTP,
		FilterChains: chains, Inspect: runtime.ListenerFilters{TLSInspector: true, Timeout: 5 * time.Second},
	}
}

// tlsClient returns a client presenting cert (when non-nil) and trusting ca.
func tlsClient(t *testing.T, ca *testCA, cert *tls.Certificate, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "gw.example.com"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2, DisableKeepAlives: !h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestPermissiveServesTLSAndPlainTextOnOnePort(t *testing.T) {
	e := newTLSEnv(t)
	up := upstream(t, "a", nil, nil)
	addr := freeAddr(t)
	m := e.manager(t, e.secrets)
	l := chainListener(addr,
		mtlsChain("tls", false, runtime.FilterChainMatch{TransportProtocol: runtime.TransportTLS}),
		plainChain(runtime.FilterChainMatch{TransportProtocol: runtime.TransportRaw}))
	if err := m.Apply(cfgTo("1", up, l)); err != nil {
		t.Fatal(err)
	}
	if body, err := get(client(t), "http://"+addr.String()+"/"); err != nil || body != "a" {
		t.Fatalf("plain text: %q, %v", body, err)
	}
	if st := <-e.seen; st != nil {
		t.Errorf("plain-text request saw r.TLS %+v", st)
	}
	_, _, cert := e.ca.issue(t, leaf{uri: "spiffe://cluster.local/ns/default/sa/client"})
	for _, h2 := range []bool{false, true} {
		c := tlsClient(t, e.ca, &cert, h2)
		resp, err := c.Get("https://" + addr.String() + "/")
		if err != nil {
			t.Fatalf("tls (h2=%v): %v", h2, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "a" || (resp.ProtoMajor == 2) != h2 {
			t.Errorf("tls (h2=%v): body %q proto %s", h2, b, resp.Proto)
		}
		st := <-e.seen
		if st == nil || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].URIs[0].String() != "spiffe://cluster.local/ns/default/sa/client" {
			t.Errorf("tls (h2=%v): handler did not see the peer certificate: %+v", h2, st)
		}
	}
}

func TestStrictRefusesPlainText(t *testing.T) {
	e := newTLSEnv(t)
	up := upstream(t, "a", nil, nil)
	addr := freeAddr(t)
	m := e.manager(t, e.secrets)
	l := chainListener(addr, mtlsChain("tls", true, runtime.FilterChainMatch{TransportProtocol: runtime.TransportTLS}))
	if err := m.Apply(cfgTo("1", up, l)); err != nil {
		t.Fatal(err)
	}
	if body, err := get(client(t), "http://"+addr.String()+"/"); err == nil {
		t.Fatalf("plain text got %q, want the connection closed", body)
	}
	_, _, cert := e.ca.issue(t, leaf{uri: "spiffe://cluster.local/ns/default/sa/client"})
	if body, err := get(tlsClient(t, e.ca, &cert, false), "https://"+addr.String()+"/"); err != nil || body != "a" {
		t.Fatalf("mTLS: %q, %v", body, err)
	}
}

func TestMutualTLSClientCertificates(t *testing.T) {
	e := newTLSEnv(t)
	other := newCA(t, "other")
	up := upstream(t, "a", nil, nil)
	addr := freeAddr(t)
	m := e.manager(t, e.secrets)
	fc := mtlsChain("tls", true, runtime.FilterChainMatch{})
	fc.TLS.SubjectAltNames = []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchPrefix, Value: "spiffe://cluster.local/ns/default/"}}}
	if err := m.Apply(cfgTo("1", up, chainListener(addr, fc))); err != nil {
		t.Fatal(err)
	}
	issue := func(ca *testCA, l leaf) *tls.Certificate { _, _, c := ca.issue(t, l); return &c }
	tests := []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"good", issue(e.ca, leaf{uri: "spiffe://cluster.local/ns/default/sa/client"}), true},
		{"no certificate", nil, false},
		{"another CA", issue(other, leaf{uri: "spiffe://cluster.local/ns/default/sa/client"}), false},
		{"expired", issue(e.ca, leaf{uri: "spiffe://cluster.local/ns/default/sa/client", notAfter: time.Now().Add(-time.Minute)}), false},
		{"SAN not allowed", issue(e.ca, leaf{uri: "spiffe://cluster.local/ns/evil/sa/client"}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := get(tlsClient(t, e.ca, tc.cert, false), "https://"+addr.String()+"/")
			if tc.ok != (err == nil && body == "a") {
				t.Errorf("got %q, %v; want ok=%v", body, err, tc.ok)
			}
		})
	}
}

// tlsBackend serves name over TLS with a certificate for host.
func tlsBackend(t *testing.T, ca *testCA, host, name string) runtime.Endpoint {
	t.Helper()
	_, _, cert := ca.issue(t, leaf{dns: []string{host}})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.TLS.ServerName)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	ap := netip.MustParseAddrPort(l.Addr().String())
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}

func TestSNIPassthrough(t *testing.T) {
	ca := newCA(t, "backends")
	a := tlsBackend(t, ca, "a.example.com", "A")
	b := tlsBackend(t, ca, "b.example.com", "B")
	addr := freeAddr(t)
	m := newManager(t, time.Second)
	pass := func(sni, cluster string) *runtime.FilterChain {
		return &runtime.FilterChain{Name: sni, Match: runtime.FilterChainMatch{ServerNames: []string{sni}}, Kind: runtime.ListenerTCP,
			TCP: &runtime.TCPListener{Clusters: []runtime.WeightedCluster{{Name: cluster, Weight: 1}}}}
	}
	l := &runtime.Listener{Name: "gw", Address: addr, Kind: runtime.ListenerTCP,
		FilterChains: []*runtime.FilterChain{pass("a.example.com", "ca"), pass("*.example.com", "cb")},
		Inspect:      runtime.ListenerFilters{TLSInspector: true}}
	cfg := &runtime.Config{Version: "1", Listeners: []*runtime.Listener{l}, Clusters: map[string]*runtime.Cluster{
		"ca": {Name: "ca", Endpoints: []runtime.Endpoint{a}}, "cb": {Name: "cb", Endpoints: []runtime.Endpoint{b}},
	}}
	if err := m.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]string{"a.example.com": "A a.example.com", "b.example.com": "B b.example.com"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: sni}, DisableKeepAlives: true}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		if body, err := get(c, "https://"+addr.String()+"/"); err != nil || body != want {
			t.Errorf("SNI %s: %q, %v; want %q", sni, body, err, want)
		}
	}
	// No SNI matches no chain: the connection is closed.
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("TLS without SNI was passed through, want closed")
	}
}

// TestGatewayFileSecrets serves HTTPS SIMPLE and MUTUAL with key material
// from files (a Gateway credentialName in local mode), and picks up a
// rotated certificate without a config change.
func TestGatewayFileSecrets(t *testing.T) {
	ca := newCA(t, "gw-ca")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM, keyPEM, _ := ca.issue(t, leaf{dns: []string{"gw.example.com"}})
	certFile, keyFile := write("tls.crt", certPEM), write("tls.key", keyPEM)
	caFile := write("ca.crt", ca.pem)
	files := secrets.New(secrets.Options{CheckInterval: -1})
	up := upstream(t, "a", nil, nil)
	addr := freeAddr(t)
	m := (&tlsEnv{seen: make(chan *tls.ConnectionState, 100)}).manager(t, files)
	simple := &runtime.FilterChain{Name: "simple", Match: runtime.FilterChainMatch{ServerNames: []string{"gw.example.com"}},
		Kind: runtime.ListenerHTTP, HTTP: &runtime.HTTPListener{RouteName: "rt"},
		TLS: &runtime.DownstreamTLS{CertSecrets: []string{secrets.CertPrefix + certFile + "~" + keyFile}, ALPN: []string{"h2", "http/1.1"}}}
	mutual := &runtime.FilterChain{Name: "mutual", Match: runtime.FilterChainMatch{ServerNames: []string{"mtls.example.com"}},
		Kind: runtime.ListenerHTTP, HTTP: &runtime.HTTPListener{RouteName: "rt"},
		TLS: &runtime.DownstreamTLS{CertSecrets: simple.TLS.CertSecrets, RootSecret: secrets.RootPrefix + caFile, RequireClientCert: true}}
	l := &runtime.Listener{Name: "gw", Address: addr, FilterChains: []*runtime.FilterChain{simple, mutual}, Kind: runtime.ListenerHTTP, HTTP: simple.HTTP}
	if err := m.Apply(cfgTo("1", up, l)); err != nil {
		t.Fatal(err)
	}
	dial := func(sni string, cert *tls.Certificate) (*x509.Certificate, error) {
		cfg := &tls.Config{RootCAs: ca.pool, ServerName: sni, InsecureSkipVerify: sni != "gw.example.com"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr.String() + "/")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "a" {
			return nil, &net.AddrError{Err: "unexpected body " + string(b)}
		}
		return resp.TLS.PeerCertificates[0], nil
	}
	first, err := dial("gw.example.com", nil)
	if err != nil {
		t.Fatalf("SIMPLE: %v", err)
	}
	if _, err := dial("mtls.example.com", nil); err == nil {
		t.Error("MUTUAL without a client certificate succeeded")
	}
	_, _, cc := ca.issue(t, leaf{dns: []string{"client"}})
	if _, err := dial("mtls.example.com", &cc); err != nil {
		t.Errorf("MUTUAL with a client certificate: %v", err)
	}
	// Rotate the files; the next handshake serves the new certificate.
	certPEM2, keyPEM2, _ := ca.issue(t, leaf{dns: []string{"gw.example.com"}})
	write("tls.key", keyPEM2)
	write("tls.crt", certPEM2)
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(certFile, later, later)
	_ = os.Chtimes(keyFile, later, later)
	second, err := dial("gw.example.com", nil)
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Error("rotated certificate not served")
	}
}

// TestPeekTimeout: a client that sends nothing (a server-first protocol)
// is closed after the peek timeout, or handed to the chain that matches
// what is known when the listener continues on timeout.
func TestPeekTimeout(t *testing.T) {
	for _, cont := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "continue"}[cont], func(t *testing.T) {
			up := serverFirst(t, "hello")
			addr := freeAddr(t)
			m := newManager(t, time.Second)
			l := &runtime.Listener{Name: "db", Address: addr, FilterChains: []*runtime.FilterChain{{
				Match: runtime.FilterChainMatch{TransportProtocol: runtime.TransportRaw}, Kind: runtime.ListenerTCP,
				TCP: &runtime.TCPListener{Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}}},
			}}, Inspect: runtime.ListenerFilters{HTTPInspector: true, TLSInspector: true, Timeout: 100 * time.Millisecond, ContinueOnTimeout: cont}}
			cfg := &runtime.Config{Version: "1", Listeners: []*runtime.Listener{l},
				Clusters: map[string]*runtime.Cluster{"c": {Name: "c", Endpoints: []runtime.Endpoint{up}}}}
			if err := m.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 5))
			if got := string(b) == "hello"; got != cont {
				t.Errorf("read %q; want greeting=%v", b, cont)
			}
		})
	}
}

// serverFirst is an upstream that greets every connection, then closes.
func serverFirst(t *testing.T, greeting string) runtime.Endpoint {
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
			_, _ = io.WriteString(c, greeting)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	ap := netip.MustParseAddrPort(l.Addr().String())
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}
