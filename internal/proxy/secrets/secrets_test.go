package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// selfSigned returns a PEM certificate and key with the given serial.
func selfSigned(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

type files struct {
	t   *testing.T
	dir string
	mod time.Time
}

// write writes b to name with a fresh modification time.
func (f *files) write(name string, b []byte) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.mod = f.mod.Add(time.Second)
	if err := os.Chtimes(p, f.mod, f.mod); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func serialOf(t *testing.T, c *tls.Certificate) int64 {
	t.Helper()
	return c.Leaf.SerialNumber.Int64()
}

func TestCertificateReload(t *testing.T) {
	f := &files{t: t, dir: t.TempDir(), mod: time.Now()}
	c1, k1 := selfSigned(t, 1)
	cert, key := f.write("tls.crt", c1), f.write("tls.key", k1)
	s := New(Options{CheckInterval: -1})
	name := CertPrefix + cert + "~" + key
	got, err := s.Certificate(name)
	if err != nil || serialOf(t, got) != 1 {
		t.Fatalf("first load: %v, %v", got, err)
	}
	// A half-written rotation (new cert, old key) keeps the last good pair.
	c2, k2 := selfSigned(t, 2)
	f.write("tls.crt", c2)
	if got, err := s.Certificate(name); err != nil || serialOf(t, got) != 1 {
		t.Fatalf("mismatched pair: %v, %v; want the last good certificate", got, err)
	}
	f.write("tls.key", k2)
	if got, err := s.Certificate(name); err != nil || serialOf(t, got) != 2 {
		t.Fatalf("after rotation: %v, %v; want serial 2", got, err)
	}
}

func TestCheckInterval(t *testing.T) {
	f := &files{t: t, dir: t.TempDir(), mod: time.Now()}
	c1, _ := selfSigned(t, 1)
	ca := f.write("ca.crt", c1)
	s := New(Options{CheckInterval: time.Minute})
	now := time.Now()
	s.now = func() time.Time { return now }
	p1, err := s.Roots(RootPrefix + ca)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := selfSigned(t, 2)
	f.write("ca.crt", c2)
	if p, _ := s.Roots(RootPrefix + ca); p != p1 {
		t.Error("files re-read before the check interval passed")
	}
	now = now.Add(2 * time.Minute)
	if p, _ := s.Roots(RootPrefix + ca); p == p1 {
		t.Error("changed file not re-read after the check interval")
	}
}

type fallback struct{}

func (fallback) Certificate(string) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
func (fallback) Roots(string) (*x509.CertPool, error)         { return x509.NewCertPool(), nil }

func TestNames(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		s       *Files
		cert    bool
		wantErr bool
	}{
		{"default without fallback", New(Options{}), true, true},
		{"default with fallback", New(Options{Fallback: fallback{}}), true, false},
		{"ROOTCA with fallback", New(Options{Fallback: fallback{}}), false, false},
		{"file-cert without key", New(Options{}), true, true},
		{"file-root missing file", New(Options{}), false, true},
	}
	names := map[string]string{
		"default without fallback": "default", "default with fallback": "default", "ROOTCA with fallback": "ROOTCA",
		"file-cert without key": CertPrefix + filepath.Join(dir, "c"), "file-root missing file": RootPrefix + filepath.Join(dir, "none"),
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.cert {
				_, err = tc.s.Certificate(names[tc.name])
			} else {
				_, err = tc.s.Roots(names[tc.name])
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
	if _, err := New(Options{}).Certificate("default"); !errors.Is(err, ErrUnknownName) {
		t.Errorf("err = %v, want ErrUnknownName", err)
	}
}
