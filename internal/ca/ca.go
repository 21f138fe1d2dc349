package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults, as Istio's.
const (
	DefaultTrustDomain = "cluster.local"
	DefaultWorkloadTTL = 24 * time.Hour
	// RootTTL is the lifetime of a root the CA creates itself.
	RootTTL = 10 * 365 * 24 * time.Hour
	// RootCertFile is the trust bundle the CA writes into its data directory
	// for proxies to find (0644).
	RootCertFile = "root-cert.pem"
	// TrustBundleFile, in the data directory, holds extra roots to trust
	// (for example the previous root while rotating to a new one).
	TrustBundleFile = "trust-bundle.pem"
)

// ErrIdentity is returned (wrapped) by Sign when the CSR asks for an identity
// other than the one the caller proved, or for names an SVID must not carry.
var ErrIdentity = errors.New("identity not allowed")

// Options configure Load. Zero values are documented per field.
type Options struct {
	// DataDir holds the CA's files. Required.
	DataDir string
	// CACertsDir is a plugged-in CA in Istio's layout (ca-cert.pem,
	// ca-key.pem, root-cert.pem, cert-chain.pem). Empty means
	// DataDir/cacerts; when that directory has no ca-cert.pem the CA uses a
	// self-signed root it creates on first start under DataDir/ca.
	CACertsDir string
	// TrustDomain of the SVIDs. Empty means cluster.local.
	TrustDomain string
	// WorkloadTTL is the lifetime of workload certificates and the cap on
	// what a CSR may ask for. 0 means 24h.
	WorkloadTTL time.Duration
	// ExtraRoots are PEM files of further roots to trust.
	ExtraRoots []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil uses slog.Default(). The CA adds component=ca.
	Logger *slog.Logger
}

// CA signs workload certificates. It is immutable after Load and safe for
// concurrent use.
type CA struct {
	td      spiffeid.TrustDomain
	ttl     time.Duration
	now     func() time.Time
	signer  crypto.Signer
	cert    *x509.Certificate   // the signing certificate (a root or an intermediate)
	chain   []*x509.Certificate // from above cert up to and including its root
	bundle  []*x509.Certificate // every trusted root
	plugged bool
	log     *slog.Logger
}

// Load opens (or on first start creates) the CA in Options.DataDir and writes
// the trust bundle to DataDir/root-cert.pem.
func Load(o Options) (*CA, error) {
	if o.DataDir == "" {
		return nil, errors.New("ca: load: Options.DataDir is required")
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.WorkloadTTL <= 0 {
		o.WorkloadTTL = DefaultWorkloadTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CACertsDir == "" {
		o.CACertsDir = filepath.Join(o.DataDir, "cacerts")
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: trust domain %q: %w", o.TrustDomain, err)
	}
	if err := mkdirPrivate(o.DataDir); err != nil {
		return nil, err
	}
	c := &CA{td: td, ttl: o.WorkloadTTL, now: o.Now, log: o.Logger.With("component", "ca")}
	var ks *keySet
	if exists(filepath.Join(o.CACertsDir, "ca-cert.pem")) {
		ks, err = loadPlugged(o.CACertsDir)
		c.plugged = true
	} else {
		ks, err = loadOrCreateRoot(filepath.Join(o.DataDir, "ca"), o.Now)
	}
	if err != nil {
		return nil, err
	}
	c.signer, c.cert, c.chain = ks.key, ks.cert, ks.chain
	c.bundle = ks.roots
	extra := append([]string{filepath.Join(o.DataDir, TrustBundleFile)}, o.ExtraRoots...)
	for i, f := range extra {
		certs, err := readCerts(f)
		if i == 0 && errors.Is(err, errNotExist) {
			continue // the optional trust-bundle.pem
		}
		if err != nil {
			return nil, fmt.Errorf("ca: extra roots: %w", err)
		}
		c.bundle = appendUnique(c.bundle, certs...)
	}
	if err := writeFileAtomic(filepath.Join(o.DataDir, RootCertFile), encodeCerts(c.bundle), 0o644); err != nil {
		return nil, err
	}
	if left := c.cert.NotAfter.Sub(o.Now()); left < 30*24*time.Hour {
		c.log.Warn("CA certificate expires soon", "not_after", c.cert.NotAfter, "left", left.Round(time.Hour))
	}
	c.log.Info("CA ready", "trust_domain", td.String(), "plugged_in", c.plugged,
		"signing_cert", c.cert.Subject.String(), "roots", len(c.bundle), "workload_ttl", c.ttl)
	return c, nil
}

// TrustDomain is the trust domain of the SVIDs the CA signs.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// WorkloadTTL is the lifetime of the workload certificates it signs.
func (c *CA) WorkloadTTL() time.Duration { return c.ttl }

// Bundle returns the trusted roots. The slice must not be modified.
func (c *CA) Bundle() []*x509.Certificate { return c.bundle }

// BundlePEM returns the trusted roots, PEM-encoded.
func (c *CA) BundlePEM() []byte { return encodeCerts(c.bundle) }

// Pool returns a new pool of the trusted roots.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range c.bundle {
		p.AddCert(r)
	}
	return p
}

// Identity is the SVID of service account sa in namespace ns:
// spiffe://TD/ns/NS/sa/SA.
func (c *CA) Identity(ns, sa string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(c.td, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: identity ns %q sa %q: %w", ns, sa, err)
	}
	return id, nil
}

// Sign issues a workload certificate for id from csr. ttl 0 or above
// WorkloadTTL means WorkloadTTL. The CSR must be validly self-signed and may
// name no identity other than id (no DNS, IP or e-mail names either). The
// result is Istio's cert_chain order: the leaf, the intermediates, the root.
func (c *CA) Sign(csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: sign: csr signature: %w", err)
	}
	if !id.MemberOf(c.td) {
		return nil, fmt.Errorf("ca: sign: %s is not in trust domain %s: %w", id, c.td, ErrIdentity)
	}
	for _, u := range csr.URIs {
		if u.String() != id.String() {
			return nil, fmt.Errorf("ca: sign: csr asks for %s, caller is %s: %w", u, id, ErrIdentity)
		}
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
		return nil, fmt.Errorf("ca: sign: csr asks for DNS, IP or e-mail names: %w", ErrIdentity)
	}
	switch csr.PublicKeyAlgorithm {
	case x509.ECDSA, x509.RSA, x509.Ed25519:
	default:
		return nil, fmt.Errorf("ca: sign: unsupported public key algorithm %s", csr.PublicKeyAlgorithm)
	}
	if ttl <= 0 || ttl > c.ttl {
		ttl = c.ttl
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		// Backdated a little for clock skew between processes, never by
		// more than a tenth of the lifetime so that short-lived test
		// certificates still renew at about half their life.
		NotBefore:             now.Add(-min(time.Minute, ttl/10)),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()}, // empty subject: Go marks the SAN critical (RFC 5280 4.2.1.6)
	}
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter // never outlive the signer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	return append([]*x509.Certificate{leaf}, c.chain...), nil
}

// ServingCertificate issues a TLS server certificate with a fresh key for
// trellisd itself (the CSR and secure xDS listener), valid for the DNS
// names and IPs given, for ttl (0 means WorkloadTTL).
func (c *CA) ServingCertificate(dnsNames []string, ips []net.IP, ttl time.Duration) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "trellisd"},
		NotBefore:             now.Add(-min(time.Minute, ttl/10)),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	chain := [][]byte{der}
	for _, ic := range c.chain {
		if !isSelfSigned(ic) {
			chain = append(chain, ic.Raw)
		}
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("ca: crypto/rand failed: %v", err)) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func appendUnique(list []*x509.Certificate, more ...*x509.Certificate) []*x509.Certificate {
	for _, m := range more {
		dup := false
		for _, l := range list {
			if l.Equal(m) {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, m)
		}
	}
	return list
}
