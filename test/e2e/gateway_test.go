package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Addresses of the TLS gateway test: the gateway workload, its ports and
// the TLS backend a PASSTHROUGH server forwards to.
const (
	hostTLSGateway = 31
	hostTLSBackend = 32
	tlsGwHTTPS     = 18443
	tlsGwHTTP      = 18090
	tlsBackendPort = 18444
)

// gwCA issues the certificates of the gateway test.
type gwCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
	n    int64
}

func newGwCA(t *testing.T) *gwCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e gateway CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &gwCA{cert: c, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), n: 1}
}

// issue returns a PEM certificate and key for dns names.
func (ca *gwCA) issue(t *testing.T, dns ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.n++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.n), Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writePEM(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLSBackend serves "backend" over TLS for pass.example.com.
func startTLSBackend(t *testing.T, ca *gwCA, addr string) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "pass.example.com")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "backend "+r.TLS.ServerName)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
}

func tlsGatewayYAML(gwIP, backendIP, cert, key, ca string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tlsgw, namespace: default}
spec:
  address: %[1]s
  labels: {istio: tlsgateway}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pass, namespace: default}
spec:
  hosts: [pass.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %[7]d, name: tls, protocol: TLS}]
  endpoints: [{address: %[2]s}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tlsgw, namespace: default}
spec:
  selector: {istio: tlsgateway}
  servers:
  - port: {number: %[8]d, name: https-simple, protocol: HTTPS}
    hosts: [simple.example.com]
    tls: {mode: SIMPLE, serverCertificate: %[3]s, privateKey: %[4]s}
  - port: {number: %[8]d, name: https-mutual, protocol: HTTPS}
    hosts: [mutual.example.com]
    tls: {mode: MUTUAL, serverCertificate: %[3]s, privateKey: %[4]s, caCertificates: %[5]s}
  - port: {number: %[8]d, name: tls-pass, protocol: TLS}
    hosts: [pass.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: %[9]d, name: http, protocol: HTTP}
    hosts: [simple.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [simple.example.com, mutual.example.com]
  gateways: [tlsgw]
  http:
  - route: [{destination: {host: %[6]s, port: {number: %[10]d}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: default}
spec:
  hosts: [pass.example.com]
  gateways: [tlsgw]
  tls:
  - match: [{sniHosts: [pass.example.com], port: %[8]d}]
    route: [{destination: {host: pass.example.com, port: {number: %[7]d}}}]
`, gwIP, backendIP, cert, key, ca, echoHost, tlsBackendPort, tlsGwHTTPS, tlsGwHTTP, portHTTP)
}

// TestGatewayTLS runs a real --gateway proxy with HTTPS SIMPLE, MUTUAL,
// TLS PASSTHROUGH and httpsRedirect servers, with routes from trellisd.
func TestGatewayTLS(t *testing.T) {
	m := startMesh(t, meshOptions{})
	gwIP, backendIP := m.bl.ip(hostTLSGateway), m.bl.ip(hostTLSBackend)
	ca := newGwCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, "simple.example.com", "mutual.example.com")
	cert, key := writePEM(t, dir, "tls.crt", certPEM), writePEM(t, dir, "tls.key", keyPEM)
	caFile := writePEM(t, dir, "ca.crt", ca.pem)
	startTLSBackend(t, ca, fmt.Sprintf("%s:%d", backendIP, tlsBackendPort))
	writeFile(t, m.dir, "tlsgateway.yaml", tlsGatewayYAML(gwIP, backendIP, cert, key, caFile))
	p := startProc(t, "proxy tlsgw", "trellis-proxy", "--xds", m.xdsAddr, "--workload", "default/tlsgw", "--address", gwIP, "--gateway")
	m.proxies["tlsgw"] = p
	waitFor(t, "tls gateway proxy ready", readyTimeout, ready("http://"+gwIP+":15021/healthz/ready"), p, m.trellisd)

	clientPEM, clientKey := ca.issue(t, "client.example.com")
	clientCert, err := tls.X509KeyPair(clientPEM, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	httpsGet := func(sni, path string, certs ...tls.Certificate) (int, string, error) {
		tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: sni, Certificates: certs},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("%s:%d", gwIP, tlsGwHTTPS))
			}}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get(fmt.Sprintf("https://%s:%d%s", sni, tlsGwHTTPS, path))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	waitFor(t, "HTTPS SIMPLE routes", readyTimeout, func() error {
		code, _, err := httpsGet("simple.example.com", "/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	}, m.all()...)

	t.Run("simple", func(t *testing.T) {
		code, body, err := httpsGet("simple.example.com", "/hello")
		if err != nil || code != http.StatusOK || !strings.Contains(body, "echo-v") {
			t.Errorf("got %d %q %v, want 200 from echo", code, body, err)
		}
	})
	t.Run("mutual", func(t *testing.T) {
		if code, body, err := httpsGet("mutual.example.com", "/hello", clientCert); err != nil || code != http.StatusOK {
			t.Errorf("with client certificate: %d %q %v", code, body, err)
		}
		if code, _, err := httpsGet("mutual.example.com", "/hello"); err == nil {
			t.Errorf("without client certificate: status %d, want the handshake refused", code)
		}
	})
	t.Run("passthrough", func(t *testing.T) {
		code, body, err := httpsGet("pass.example.com", "/")
		if err != nil || body != "backend pass.example.com" {
			t.Errorf("got %d %q %v, want the backend's own TLS answer", code, body, err)
		}
	})
	t.Run("https redirect", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		t.Cleanup(c.CloseIdleConnections)
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/a?b=1", gwIP, tlsGwHTTP), nil)
		req.Host = "simple.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://simple.example.com") || !strings.HasSuffix(loc, "/a?b=1") {
			t.Errorf("got %d Location %q, want 301 to https://simple.example.com.../a?b=1", resp.StatusCode, loc)
		}
	})
}
