package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

var errNotExist = fs.ErrNotExist

// keySet is a signing certificate, its key, its chain to a root and the roots
// it brings.
type keySet struct {
	key   crypto.Signer
	cert  *x509.Certificate
	chain []*x509.Certificate // cert .. root, inclusive
	roots []*x509.Certificate
}

// loadPlugged reads Istio's plugged-in CA layout: ca-cert.pem and ca-key.pem
// sign, cert-chain.pem is the chain from ca-cert.pem to the root, and
// root-cert.pem holds the root(s).
func loadPlugged(dir string) (*keySet, error) {
	certs, err := readCerts(filepath.Join(dir, "ca-cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("ca: plugged-in: %w", err)
	}
	key, err := readKey(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("ca: plugged-in: %w", err)
	}
	roots, err := readCerts(filepath.Join(dir, "root-cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("ca: plugged-in: %w", err)
	}
	chain, err := readCerts(filepath.Join(dir, "cert-chain.pem"))
	if errors.Is(err, errNotExist) {
		chain, err = certs, nil // a root used directly: ca-cert.pem is the chain
	}
	if err != nil {
		return nil, fmt.Errorf("ca: plugged-in: %w", err)
	}
	ks := &keySet{key: key, cert: certs[0], roots: roots}
	if err := checkSigner(ks.cert, key); err != nil {
		return nil, fmt.Errorf("ca: plugged-in %s: %w", dir, err)
	}
	// cert-chain.pem usually starts with ca-cert.pem; make sure it does
	// exactly once, and that it ends at a root we trust.
	ks.chain = []*x509.Certificate{ks.cert}
	for _, c := range chain {
		if !c.Equal(ks.cert) {
			ks.chain = append(ks.chain, c)
		}
	}
	last := ks.chain[len(ks.chain)-1]
	if !isSelfSigned(last) {
		ks.chain = append(ks.chain, roots[0])
	}
	if err := verifyChain(ks.chain, roots); err != nil {
		return nil, fmt.Errorf("ca: plugged-in %s: %w", dir, err)
	}
	return ks, nil
}

// verifyChain checks that chain[0] chains through chain[1:] to one of roots.
func verifyChain(chain, roots []*x509.Certificate) error {
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	for _, c := range chain[1:] {
		ip.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip,
		CurrentTime: chain[0].NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("ca-cert.pem does not chain to root-cert.pem: %w", err)
	}
	return nil
}

// loadOrCreateRoot reads the self-signed root in dir, creating it when dir
// does not exist. Creation is atomic (a temporary directory renamed into
// place), so two trellisd starting together agree on one root.
func loadOrCreateRoot(dir string, now func() time.Time) (*keySet, error) {
	if !exists(dir) {
		if err := createRoot(dir, now()); err != nil {
			return nil, err
		}
	}
	certs, err := readCerts(filepath.Join(dir, "root-cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("ca: root: %w", err)
	}
	key, err := readKey(filepath.Join(dir, "root-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("ca: root: %w", err)
	}
	if err := checkSigner(certs[0], key); err != nil {
		return nil, fmt.Errorf("ca: root %s: %w", dir, err)
	}
	return &keySet{key: key, cert: certs[0], chain: certs[:1], roots: certs[:1]}, nil
}

func createRoot(dir string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Trellis"}, CommonName: "Trellis root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, ".ca-")
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left
	if err := os.WriteFile(filepath.Join(tmp, "root-key.pem"),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "root-cert.pem"),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if exists(dir) {
			return nil // another process won the race; use its root
		}
		return fmt.Errorf("ca: create root: %w", err)
	}
	return nil
}

// checkSigner checks that cert is a CA certificate whose public key is key's.
func checkSigner(cert *x509.Certificate, key crypto.Signer) error {
	if !cert.IsCA {
		return errors.New("certificate is not a CA (basicConstraints CA:FALSE)")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("private key does not match the certificate")
	}
	return nil
}

// readCerts reads one or more PEM certificates; a missing file wraps
// fs.ErrNotExist.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParseCertificates decodes every CERTIFICATE block in PEM data; other
// blocks are skipped. It fails when there is none.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key cannot sign", path)
	}
	return s, nil
}

// EncodeCertificates PEM-encodes certs in order.
func EncodeCertificates(certs []*x509.Certificate) []byte { return encodeCerts(certs) }

func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// writeFileAtomic writes data through a temporary file and a rename, so that
// readers (proxies) never see half a file, and leaves perm on the result.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	return nil
}

func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ca: data dir: %w", err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
