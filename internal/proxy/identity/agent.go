package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Secret names the agent serves itself (docs/xds.md, "Secrets").
const (
	DefaultName = "default"
	RootName    = "ROOTCA"
	// ServerName is the name on trellisd's serving certificate.
	ServerName = "istiod.istio-system.svc"
)

// Metadata keys of the CSR call (internal/certserver's).
const (
	authorizationKey = "authorization"
	workloadKey      = "x-trellis-workload"
)

// Options configure an Agent. Zero values are documented per field.
type Options struct {
	// CAAddr is trellisd's secure address, host:port. Required.
	CAAddr string
	// Namespace and Workload name the WorkloadEntry the proxy fronts.
	// Required.
	Namespace, Workload string
	// TokenFile holds the join token; it is re-read on every request, so
	// trellisd may rewrite it. Required.
	TokenFile string
	// RootFile holds the roots that verify trellisd and start the mesh
	// trust bundle; re-read on every request (root rotation). Required.
	RootFile string
	// ServerName is expected on trellisd's certificate. Empty means
	// istiod.istio-system.svc.
	ServerName string
	// TTL is the lifetime asked for; 0 leaves it to the CA.
	TTL time.Duration
	// MaxBackoff caps the retry delay after a failed request; 0 means 30s.
	MaxBackoff time.Duration
	// OnRotate is called from Run's goroutine after each new certificate is
	// in place. Nil means no callback. It must not block for long.
	OnRotate func(leaf *x509.Certificate)
	// Registerer receives the agent's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger; nil uses slog.Default(). The agent adds component=identity.
	Logger *slog.Logger
}

// Agent fetches and renews the workload certificate and implements
// runtime.Secrets. Create with New, start with Run. Lookups are safe for
// concurrent use at any time and never block on the network.
type Agent struct {
	opts    Options
	log     *slog.Logger
	cert    atomic.Pointer[tls.Certificate] // "default"; Leaf set
	roots   atomic.Pointer[x509.CertPool]   // "ROOTCA"
	ready   chan struct{}
	once    sync.Once
	files   fileCache
	metrics *metrics
	running atomic.Bool
}

var _ runtime.Secrets = (*Agent)(nil)

// New returns an agent; it holds no certificate until Run fetches one.
func New(o Options) (*Agent, error) {
	switch {
	case o.CAAddr == "":
		return nil, errors.New("identity: Options.CAAddr is required")
	case o.Namespace == "" || o.Workload == "":
		return nil, errors.New("identity: Options.Namespace and Options.Workload are required")
	case o.TokenFile == "" || o.RootFile == "":
		return nil, errors.New("identity: Options.TokenFile and Options.RootFile are required")
	}
	if o.ServerName == "" {
		o.ServerName = ServerName
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &Agent{opts: o, log: o.Logger.With("component", "identity"), ready: make(chan struct{})}
	m, err := newMetrics(o.Registerer, a.expiry)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	if pool, err := readPool(o.RootFile); err == nil {
		a.roots.Store(pool) // trust what we can before the first certificate
	}
	return a, nil
}

// Ready is closed once the agent holds its first certificate.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run fetches a certificate, then renews it at about half its lifetime
// until ctx is done. Failures keep the current certificate and retry with
// jittered exponential backoff. It returns nil when ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("identity: Run called twice")
	}
	defer a.running.Store(false)
	failures := 0
	for {
		var wait time.Duration
		if err := a.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = backoff(failures, a.opts.MaxBackoff)
			failures++
			a.metrics.requests.WithLabelValues("failure").Inc()
			level := slog.LevelWarn
			if a.cert.Load() == nil {
				level = slog.LevelError
			}
			a.log.Log(ctx, level, "certificate request failed; keeping the current certificate",
				"error", err, "retry_in", wait.Round(time.Millisecond), "have_cert", a.cert.Load() != nil)
		} else {
			failures = 0
			a.metrics.requests.WithLabelValues("success").Inc()
			wait = renewIn(a.cert.Load().Leaf, time.Now())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// renewIn is how long to wait before renewing leaf, received at now: half
// its remaining life, less up to a tenth of it at random so that proxies
// started together spread out. The remaining life is measured from receipt,
// not NotBefore: X.509 times have one-second precision and CAs backdate,
// which would make short-lived certificates renew far too early.
func renewIn(leaf *x509.Certificate, now time.Time) time.Duration {
	life := leaf.NotAfter.Sub(now)
	if life <= 0 {
		return 0
	}
	return life/2 - mrand.N(life/10+1)
}

// backoff is the n-th retry delay: drawn from [d/2, d), d = min(max, 250ms·2^n).
func backoff(n int, maxD time.Duration) time.Duration {
	d := 250 * time.Millisecond
	for i := 0; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + mrand.N(d/2+1)
}

// renew performs one CSR round trip and installs the result.
func (a *Agent) renew(ctx context.Context) error {
	token, err := os.ReadFile(a.opts.TokenFile)
	if err != nil {
		return fmt.Errorf("identity: join token: %w", err)
	}
	tok := strings.TrimSpace(string(token))
	if tok == "" {
		return fmt.Errorf("identity: join token: %s is empty", a.opts.TokenFile)
	}
	rootPool, err := readPool(a.opts.RootFile)
	if err != nil {
		return fmt.Errorf("identity: ca root: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("identity: key: %w", err)
	}
	// The CSR names no identity: trellisd decides it from the token.
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return fmt.Errorf("identity: csr: %w", err)
	}
	cc, err := grpc.NewClient(a.opts.CAAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: rootPool, ServerName: a.opts.ServerName, MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		return fmt.Errorf("identity: dial %s: %w", a.opts.CAAddr, err)
	}
	defer cc.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rctx = metadata.AppendToOutgoingContext(rctx,
		authorizationKey, "Bearer "+tok, workloadKey, a.opts.Namespace+"/"+a.opts.Workload)
	req := &csrRequest{
		CSR:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		ValidityDuration: int64(a.opts.TTL / time.Second),
	}
	var resp csrResponse
	if err := cc.Invoke(rctx, createCertificateMethod, req, &resp, grpc.ForceCodec(wireCodec{})); err != nil {
		return fmt.Errorf("identity: CreateCertificate at %s: %w", a.opts.CAAddr, err)
	}
	cert, root, err := assemble(resp.CertChain, key)
	if err != nil {
		return err
	}
	// The bundle: the roots file (several roots while one rotates) and the
	// root the chain ends in.
	bundle := rootPool
	if root != nil {
		bundle.AddCert(root)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: bundle, Intermediates: intermediates(cert),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("identity: issued certificate does not verify: %w", err)
	}
	a.roots.Store(bundle)
	a.cert.Store(cert)
	a.once.Do(func() { close(a.ready) })
	a.log.Info("certificate installed", "identity", uriSANs(cert.Leaf), "not_after", cert.Leaf.NotAfter,
		"serial", cert.Leaf.SerialNumber.Text(16))
	if a.opts.OnRotate != nil {
		a.opts.OnRotate(cert.Leaf)
	}
	return nil
}

// assemble builds the tls.Certificate from Istio's cert_chain (leaf first,
// root last) and returns the root separately.
func assemble(chainPEM []string, key *ecdsa.PrivateKey) (*tls.Certificate, *x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, p := range chainPEM {
		rest := []byte(p)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("identity: cert_chain: %w", err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("identity: cert_chain is empty")
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, errors.New("identity: issued certificate is not for our key")
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	var root *x509.Certificate
	for i, c := range certs {
		if i > 0 && i == len(certs)-1 && c.IsCA && c.CheckSignatureFrom(c) == nil {
			root = c // roots are not sent in the TLS chain
			break
		}
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, root, nil
}

func intermediates(c *tls.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			p.AddCert(ic)
		}
	}
	return p
}

func uriSANs(c *x509.Certificate) string {
	var s []string
	for _, u := range c.URIs {
		s = append(s, u.String())
	}
	return strings.Join(s, ",")
}

// expiry is the current certificate's NotAfter; zero before the first.
func (a *Agent) expiry() time.Time {
	if c := a.cert.Load(); c != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// Certificate implements runtime.Secrets.
func (a *Agent) Certificate(name string) (*tls.Certificate, error) {
	if name == DefaultName {
		if c := a.cert.Load(); c != nil {
			return c, nil
		}
		return nil, errors.New("identity: no workload certificate yet")
	}
	if spec, ok := strings.CutPrefix(name, "file-cert:"); ok {
		certFile, keyFile, ok := strings.Cut(spec, "~")
		if !ok || certFile == "" || keyFile == "" {
			return nil, fmt.Errorf("identity: secret %q: want file-cert:CERT~KEY", name)
		}
		return a.files.keyPair(certFile, keyFile)
	}
	return nil, fmt.Errorf("identity: unknown certificate secret %q", name)
}

// Roots implements runtime.Secrets.
func (a *Agent) Roots(name string) (*x509.CertPool, error) {
	if name == RootName {
		if p := a.roots.Load(); p != nil {
			return p, nil
		}
		return nil, errors.New("identity: no trust bundle yet")
	}
	if path, ok := strings.CutPrefix(name, "file-root:"); ok && path != "" {
		return a.files.pool(path)
	}
	return nil, fmt.Errorf("identity: unknown root secret %q", name)
}

// XDSTLSConfig is the client TLS config of the secure xDS channel: it
// presents the current workload certificate and verifies trellisd against
// the current trust bundle, both read at handshake time.
func (a *Agent) XDSTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := a.cert.Load(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil // none yet: the server routes us to the CSR side
		},
		// Verification is done below against the bundle of the moment
		// (which rotates); the standard check would pin one pool.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return a.verifyServer(cs)
		},
	}
}

func (a *Agent) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("identity: trellisd sent no certificate")
	}
	roots := a.roots.Load()
	if roots == nil {
		return errors.New("identity: no trust bundle to verify trellisd")
	}
	ip := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		ip.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: ip,
		DNSName: a.opts.ServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("identity: verify trellisd: %w", err)
	}
	return nil
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return p, nil
}
