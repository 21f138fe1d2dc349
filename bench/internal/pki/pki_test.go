package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"testing"
)

// TestWriteVerifies checks that the leaves load as key pairs and verify
// against the root for their purpose and names.
func TestWriteVerifies(t *testing.T) {
	ip := netip.MustParseAddr("127.0.152.2")
	f, err := Write(t.TempDir(), ip)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("root does not parse")
	}
	for _, tc := range []struct {
		name, cert, key, bundle string
		opts                    x509.VerifyOptions
	}{
		{"server by name", f.ServerCert, f.ServerKey, f.ServerBundle, x509.VerifyOptions{DNSName: ServerName}},
		{"server by address", f.ServerCert, f.ServerKey, f.ServerBundle, x509.VerifyOptions{DNSName: ip.String()}},
		{"client", f.ClientCert, f.ClientKey, f.ClientBundle, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.LoadX509KeyPair(tc.bundle, tc.bundle); err != nil {
				t.Fatalf("bundle: %v", err)
			}
			leaf, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			tc.opts.Roots = roots
			if _, err := leaf.Verify(tc.opts); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
}
