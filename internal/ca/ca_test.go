package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func load(t *testing.T, o Options) *CA {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	c, err := Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func newCSR(t *testing.T, uris ...string) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestLoadCreatesRoot(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := load(t, Options{DataDir: dir, Now: func() time.Time { return now }})

	if got := mode(t, filepath.Join(dir, "ca", "root-key.pem")); got != 0o600 {
		t.Errorf("root-key.pem mode = %o, want 600", got)
	}
	if got := mode(t, filepath.Join(dir, RootCertFile)); got != 0o644 {
		t.Errorf("root-cert.pem mode = %o, want 644", got)
	}
	root := c.cert
	if !root.IsCA || !isSelfSigned(root) {
		t.Errorf("root is not a self-signed CA")
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if life := root.NotAfter.Sub(now); life < RootTTL-time.Hour || life > RootTTL {
		t.Errorf("root lifetime from now = %v, want about 10 years", life)
	}

	// A second start reuses the root.
	again := load(t, Options{DataDir: dir})
	if !again.cert.Equal(c.cert) {
		t.Error("second Load created a new root")
	}
	written, err := readCerts(filepath.Join(dir, RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 1 || !written[0].Equal(root) {
		t.Errorf("root-cert.pem holds %d certs, want the root", len(written))
	}
}

func TestSignSVID(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	c := load(t, Options{DataDir: t.TempDir(), Now: func() time.Time { return now }})
	id, err := c.Identity("default", "bookinfo-reviews")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		csrURIs []string
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{name: "no names in csr, default ttl", wantTTL: DefaultWorkloadTTL},
		{name: "csr names the same identity", csrURIs: []string{id.String()}, wantTTL: DefaultWorkloadTTL},
		{name: "shorter ttl honoured", ttl: time.Hour, wantTTL: time.Hour},
		{name: "longer ttl capped", ttl: 48 * time.Hour, wantTTL: DefaultWorkloadTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := c.Sign(newCSR(t, tc.csrURIs...), id, tc.ttl)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if len(chain) != 2 || !chain[1].Equal(c.cert) {
				t.Fatalf("chain has %d certs, want leaf and root", len(chain))
			}
			leaf := chain[0]
			var uris []string
			for _, u := range leaf.URIs {
				uris = append(uris, u.String())
			}
			if diff := cmp.Diff([]string{"spiffe://cluster.local/ns/default/sa/bookinfo-reviews"}, uris); diff != "" {
				t.Errorf("URI SANs (-want +got):\n%s", diff)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 || leaf.IsCA {
				t.Errorf("leaf has DNS/IP names or is a CA")
			}
			if got := leaf.NotAfter.Sub(now); got != tc.wantTTL {
				t.Errorf("NotAfter - now = %v, want %v", got, tc.wantTTL)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("leaf does not verify as a client cert: %v", err)
			}
			got, err := IdentityOf(leaf)
			if err != nil || got != (Identity{"cluster.local", "default", "bookinfo-reviews"}) {
				t.Errorf("IdentityOf = %v, %v", got, err)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	c := load(t, Options{DataDir: t.TempDir(), TrustDomain: "example.org"})
	id, _ := c.Identity("default", "reviews")
	other, _ := c.Identity("default", "ratings")
	tests := []struct {
		name string
		csr  *x509.CertificateRequest
		id   string
	}{
		{name: "csr asks for another identity", csr: newCSR(t, other.String())},
		{name: "csr asks for two identities", csr: newCSR(t, id.String(), other.String())},
		{name: "identity outside the trust domain", csr: newCSR(t), id: "spiffe://cluster.local/ns/default/sa/reviews"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := id
			if tc.id != "" {
				want = mustID(t, tc.id)
			}
			if _, err := c.Sign(tc.csr, want, 0); !errors.Is(err, ErrIdentity) {
				t.Errorf("Sign err = %v, want ErrIdentity", err)
			}
		})
	}
	t.Run("csr with DNS name", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"evil"}}, key)
		csr, _ := x509.ParseCertificateRequest(der)
		if _, err := c.Sign(csr, id, 0); !errors.Is(err, ErrIdentity) {
			t.Errorf("Sign err = %v, want ErrIdentity", err)
		}
	})
	t.Run("tampered csr", func(t *testing.T) {
		csr := newCSR(t)
		csr.Signature[len(csr.Signature)-1] ^= 0xff
		if _, err := c.Sign(csr, id, 0); err == nil {
			t.Error("Sign accepted a CSR with a bad signature")
		}
	})
}

// testCA is a root and an intermediate, as a user plugs them in.
type testCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	var tc testCA
	tc.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tc.interKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, rt, rt, tc.rootKey.Public(), tc.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	tc.root, _ = x509.ParseCertificate(der)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err = x509.CreateCertificate(rand.Reader, it, tc.root, tc.interKey.Public(), tc.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	tc.inter, _ = x509.ParseCertificate(der)
	return tc
}

func writePEM(t *testing.T, path, typ string, blocks ...[]byte) {
	t.Helper()
	var out []byte
	for _, b := range blocks {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPluggedInCA(t *testing.T) {
	tc := newTestCA(t, "corp")
	dir := t.TempDir()
	cacerts := filepath.Join(dir, "cacerts")
	if err := os.MkdirAll(cacerts, 0o700); err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(tc.interKey)
	writePEM(t, filepath.Join(cacerts, "ca-cert.pem"), "CERTIFICATE", tc.inter.Raw)
	writePEM(t, filepath.Join(cacerts, "ca-key.pem"), "EC PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(cacerts, "root-cert.pem"), "CERTIFICATE", tc.root.Raw)
	writePEM(t, filepath.Join(cacerts, "cert-chain.pem"), "CERTIFICATE", tc.inter.Raw, tc.root.Raw)

	c := load(t, Options{DataDir: dir})
	if !c.plugged {
		t.Fatal("plugged-in CA not used")
	}
	if exists(filepath.Join(dir, "ca")) {
		t.Error("a self-signed root was created although a CA was plugged in")
	}
	id, _ := c.Identity("ns1", "sa1")
	chain, err := c.Sign(newCSR(t), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 || !chain[1].Equal(tc.inter) || !chain[2].Equal(tc.root) {
		t.Fatalf("chain = %d certs, want leaf, intermediate, root", len(chain))
	}
	ip := x509.NewCertPool()
	ip.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: c.Pool(), Intermediates: ip}); err != nil {
		t.Errorf("leaf does not verify to the plugged-in root: %v", err)
	}
	if !chain[0].NotAfter.Equal(tc.inter.NotAfter) && chain[0].NotAfter.After(tc.inter.NotAfter) {
		t.Errorf("leaf outlives its signer")
	}
	sc, err := c.ServingCertificate([]string{"istiod.istio-system.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Certificate) != 2 {
		t.Errorf("serving chain has %d certs, want leaf and intermediate", len(sc.Certificate))
	}
	if _, err := sc.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), Intermediates: ip, DNSName: "istiod.istio-system.svc"}); err != nil {
		t.Errorf("serving cert: %v", err)
	}

	t.Run("key of another CA", func(t *testing.T) {
		other := newTestCA(t, "other")
		keyDER, _ := x509.MarshalECPrivateKey(other.interKey)
		writePEM(t, filepath.Join(cacerts, "ca-key.pem"), "EC PRIVATE KEY", keyDER)
		if _, err := Load(Options{DataDir: dir, Logger: quiet}); err == nil {
			t.Error("Load accepted a key that does not match ca-cert.pem")
		}
	})
}

func TestMultiRootBundle(t *testing.T) {
	dir := t.TempDir()
	old := newTestCA(t, "old")
	extra := newTestCA(t, "extra")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, TrustBundleFile), "CERTIFICATE", old.root.Raw)
	extraFile := filepath.Join(t.TempDir(), "extra.pem")
	writePEM(t, extraFile, "CERTIFICATE", extra.root.Raw, old.root.Raw) // a duplicate is kept once

	c := load(t, Options{DataDir: dir, ExtraRoots: []string{extraFile}})
	written, err := readCerts(filepath.Join(dir, RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range written {
		got = append(got, r.Subject.CommonName)
	}
	if diff := cmp.Diff([]string{"Trellis root CA", "old root", "extra root"}, got); diff != "" {
		t.Errorf("root-cert.pem (-want +got):\n%s", diff)
	}
	if len(c.Bundle()) != 3 {
		t.Errorf("Bundle has %d roots, want 3", len(c.Bundle()))
	}
	// A leaf from the old root still verifies against the bundle: rotation.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, lt, old.root, key.Public(), old.rootKey)
	leaf, _ := x509.ParseCertificate(der)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf of the old root: %v", err)
	}
}

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in      string
		want    Identity
		wantErr bool
	}{
		{in: "spiffe://cluster.local/ns/default/sa/reviews", want: Identity{"cluster.local", "default", "reviews"}},
		{in: "spiffe://cluster.local/ns/default/sa/", wantErr: true},
		{in: "spiffe://cluster.local/ns/default", wantErr: true},
		{in: "spiffe://cluster.local/ns/default/sa/reviews/extra", wantErr: true},
		{in: "spiffe://cluster.local/sa/default/ns/reviews", wantErr: true},
		{in: "spiffe://Cluster.Local/ns/default/sa/reviews", wantErr: true},
		{in: "https://cluster.local/ns/default/sa/reviews", wantErr: true},
		{in: "spiffe://cluster.local/ns/a%2Fb/sa/c", wantErr: true},
		{in: "spiffe://cluster.local/ns/../sa/c", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseIdentity(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func mustID(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
