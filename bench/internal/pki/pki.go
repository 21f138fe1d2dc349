package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// ServerName is the DNS name in the server certificate; clients verify it.
const ServerName = "hop.bench.local"

// Files are the paths Write produced, all PEM.
type Files struct {
	CA string // root certificate

	ServerCert, ServerKey string // server leaf and its key
	ServerBundle          string // server certificate followed by its key (HAProxy's crt)

	ClientCert, ClientKey string // client leaf and its key
	ClientBundle          string // client certificate followed by its key
}

// Write creates a root and a server and a client leaf in dir (created if
// needed). The server certificate names ServerName and the addresses in ips.
// The certificates are valid from an hour ago for a day.
func Write(dir string, ips ...netip.Addr) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("pki: ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "trellis-bench root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Files{}, fmt.Errorf("pki: ca: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Files{}, fmt.Errorf("pki: ca: %w", err)
	}
	f := Files{CA: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.CA, pemBlock("CERTIFICATE", caDER), 0o644); err != nil {
		return Files{}, fmt.Errorf("pki: %w", err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips []netip.Addr) (cert, key, bundle string, err error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", "", fmt.Errorf("pki: %s key: %w", name, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{ServerName}
			for _, ip := range ips {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return "", "", "", fmt.Errorf("pki: %s: %w", name, err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", "", fmt.Errorf("pki: %s key: %w", name, err)
		}
		c, kp := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", kder)
		cert, key, bundle = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem")
		for _, w := range []struct {
			path string
			data []byte
			mode os.FileMode
		}{{cert, c, 0o644}, {key, kp, 0o600}, {bundle, append(append([]byte{}, c...), kp...), 0o600}} {
			if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
				return "", "", "", fmt.Errorf("pki: %w", err)
			}
		}
		return cert, key, bundle, nil
	}
	if f.ServerCert, f.ServerKey, f.ServerBundle, err = leaf(2, "server", x509.ExtKeyUsageServerAuth, ips); err != nil {
		return Files{}, err
	}
	if f.ClientCert, f.ClientKey, f.ClientBundle, err = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil); err != nil {
		return Files{}, err
	}
	return f, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
