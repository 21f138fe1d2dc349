package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/ca"
	"github.com/trellis-mesh/trellis/internal/certserver"
	"github.com/trellis-mesh/trellis/internal/jointoken"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// controlPlane is trellisd's secure listener, in process.
type controlPlane struct {
	ca        *ca.CA
	addr      string
	dataDir   string
	rootFile  string
	tokenFile string
	authed    *certserver.Funnel
	stop      func()
}

// startControlPlane serves the CSR API on addr ("127.0.0.1:0" for any port)
// with workload certificates of the given lifetime, for WorkloadEntry
// default/reviews-v1 with service account bookinfo-reviews.
func startControlPlane(t *testing.T, dataDir, addr string, ttl time.Duration) *controlPlane {
	t.Helper()
	c, err := ca.Load(ca.Options{DataDir: dataDir, WorkloadTTL: ttl, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := jointoken.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Write([]jointoken.Workload{{Namespace: "default", Name: "reviews-v1"}}); err != nil {
		t.Fatal(err)
	}
	srv, err := certserver.New(certserver.Options{CA: c, Logger: quiet, Authenticator: certserver.JoinTokens{
		Tokens: tokens, Identity: c.Identity,
		ServiceAccount: func(ns, name string) (string, bool) {
			return "bookinfo-reviews", ns == "default" && name == "reviews-v1"
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := certserver.ServingConfig(c, []net.IP{net.IPv4(127, 0, 0, 1)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	anon, authed := certserver.NewFunnel(lis.Addr()), certserver.NewFunnel(lis.Addr())
	g := grpc.NewServer()
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(anon) }()
	go func() { defer wg.Done(); _ = certserver.Split(ctx, lis, cfg, anon, authed, quiet) }()
	var once sync.Once
	cp := &controlPlane{
		ca: c, addr: lis.Addr().String(), dataDir: dataDir, authed: authed,
		rootFile:  filepath.Join(dataDir, ca.RootCertFile),
		tokenFile: jointoken.Path(dataDir, "default", "reviews-v1"),
	}
	cp.stop = func() {
		once.Do(func() {
			cancel()
			g.Stop()
			authed.Close()
			wg.Wait()
		})
	}
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) options() Options {
	return Options{CAAddr: cp.addr, Namespace: "default", Workload: "reviews-v1",
		TokenFile: cp.tokenFile, RootFile: cp.rootFile, Logger: quiet}
}

// runAgent runs a until the test ends.
func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func waitReady(t *testing.T, a *Agent) {
	t.Helper()
	select {
	case <-a.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("no certificate within 20s")
	}
}

func TestAgentFetchesCertificate(t *testing.T) {
	cp := startControlPlane(t, t.TempDir(), "127.0.0.1:0", time.Hour)
	reg := prometheus.NewPedanticRegistry()
	o := cp.options()
	o.Registerer = reg
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Certificate(DefaultName); err == nil {
		t.Error("Certificate before the first fetch succeeded")
	}
	runAgent(t, a)
	waitReady(t, a)

	c, err := a.Certificate(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if got := uriSANs(c.Leaf); got != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Errorf("identity = %q", got)
	}
	if len(c.Certificate) != 1 {
		t.Errorf("TLS chain has %d certs, want the leaf only (the root is not sent)", len(c.Certificate))
	}
	roots, err := a.Roots(RootName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("leaf does not verify with ROOTCA: %v", err)
	}
	left := gauge(t, reg, "istio_agent_cert_expiry_seconds")
	if left < 3000 || left > 3600 {
		t.Errorf("istio_agent_cert_expiry_seconds = %v, want about 3600", left)
	}
	if _, err := a.Certificate("nope"); err == nil {
		t.Error("unknown secret name answered")
	}
}

// gauge reads a registered gauge by name.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// counter reads a registered counter by name and its result label.
func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// With 2-second certificates the agent renews at about half the lifetime,
// each time with a new key, and lookups answer the newest certificate.
func TestAgentRotates(t *testing.T) {
	cp := startControlPlane(t, t.TempDir(), "127.0.0.1:0", 2*time.Second)
	rotated := make(chan *x509.Certificate, 16)
	o := cp.options()
	o.OnRotate = func(leaf *x509.Certificate) { rotated <- leaf }
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	var prev *x509.Certificate
	var prevAt time.Time
	for i := range 4 {
		var leaf *x509.Certificate
		select {
		case leaf = <-rotated:
		case <-time.After(20 * time.Second):
			t.Fatalf("rotation %d did not happen within 20s", i)
		}
		now := time.Now()
		if prev != nil {
			if leaf.SerialNumber.Cmp(prev.SerialNumber) == 0 {
				t.Fatalf("rotation %d: same serial", i)
			}
			if leaf.PublicKey.(*ecdsa.PublicKey).Equal(prev.PublicKey) {
				t.Errorf("rotation %d: key reused", i)
			}
			// Renewed before the old one expired, at about half its life.
			if !now.Before(prev.NotAfter) {
				t.Errorf("rotation %d happened after the previous cert expired", i)
			}
			life := prev.NotAfter.Sub(prevAt)
			if at := now.Sub(prevAt); at < life/3 {
				t.Errorf("rotation %d after %v of a %v life, want about half", i, at, life)
			}
		}
		// The swap is visible to the next handshake's lookup, or a newer one.
		cur, err := a.Certificate(DefaultName)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Leaf.NotBefore.Before(leaf.NotBefore) {
			t.Errorf("rotation %d: lookup answers an older certificate", i)
		}
		prev, prevAt = leaf, now
	}
}

// When the CA goes away the agent keeps its certificate, counts failures,
// and gets a new certificate once the CA is back.
func TestAgentKeepsCertWhenCAUnreachable(t *testing.T) {
	dir := t.TempDir()
	cp := startControlPlane(t, dir, "127.0.0.1:0", 2*time.Second)
	reg := prometheus.NewPedanticRegistry()
	rotated := make(chan *x509.Certificate, 16)
	o := cp.options()
	o.Registerer = reg
	o.MaxBackoff = 500 * time.Millisecond
	o.OnRotate = func(leaf *x509.Certificate) { rotated <- leaf }
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	first := <-rotated
	cp.stop()

	deadline := time.Now().Add(20 * time.Second)
	for counter(t, reg, "trellis_agent_csr_requests_total", "failure") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed renewal within 20s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	cur, err := a.Certificate(DefaultName)
	if err != nil || !cur.Leaf.Equal(first) {
		t.Fatalf("after failures: cert changed or missing (%v)", err)
	}

	startControlPlane(t, dir, cp.addr, 2*time.Second) // same CA and port
	select {
	case leaf := <-rotated:
		if leaf.Equal(first) {
			t.Error("got the old certificate again")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no new certificate after the CA came back")
	}
}

func TestAgentRefusedWithBadToken(t *testing.T) {
	cp := startControlPlane(t, t.TempDir(), "127.0.0.1:0", time.Hour)
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	o := cp.options()
	o.TokenFile = bad
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = a.renew(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("renew with a bad token: %v, want Unauthenticated", err)
	}
	if _, err := a.Certificate(DefaultName); err == nil {
		t.Error("a certificate was installed")
	}
}

func TestFileSecrets(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, err := New(Options{CAAddr: "x:1", Namespace: "n", Workload: "w", TokenFile: "t", RootFile: "r", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	name := "file-cert:" + certFile + "~" + keyFile
	for i, cn := range []string{"first", "second-and-longer"} {
		writeSelfSigned(t, certFile, keyFile, cn)
		c, err := a.Certificate(name)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		if leaf.Subject.CommonName != cn {
			t.Errorf("round %d: got %q, want %q (file change not picked up)", i, leaf.Subject.CommonName, cn)
		}
		pool, err := a.Roots("file-root:" + certFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("round %d: file-root does not trust the file: %v", i, err)
		}
	}
	for _, bad := range []string{"file-cert:" + certFile, "file-cert:/nope~/nope", "other"} {
		if _, err := a.Certificate(bad); err == nil {
			t.Errorf("Certificate(%q) succeeded", bad)
		}
	}
	if _, err := a.Roots("file-root:/nope"); err == nil {
		t.Error("Roots of a missing file succeeded")
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
}
