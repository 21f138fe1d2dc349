package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/trellis-mesh/trellis/internal/ca"
	"github.com/trellis-mesh/trellis/internal/certserver"
	"github.com/trellis-mesh/trellis/internal/jointoken"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// secFlags are the CA and secure-listener flags (issue 4, points 1, 2, 4).
type secFlags struct {
	dataDir         string
	cacertsDir      string
	trustDomain     string
	workloadCertTTL time.Duration
	secureAddr      string // empty: derived from --xds-addr, see secureAddr
	kubeconfig      string // non-empty: Kubernetes mode for the CSR API (kube.go)
}

// defaultDataDir is the per-user state directory trellisd and trellis-proxy
// share: $XDG_STATE_HOME/trellis, else ~/.local/state/trellis.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "trellis")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "trellis")
	}
	return filepath.Join(os.TempDir(), "trellis-"+fmt.Sprint(os.Getuid()))
}

// secureAddr is --secure-addr, or by default the host of --xds-addr on port
// 15012 (127.0.0.1:15012 with the defaults); an --xds-addr on port 0 (tests)
// gives port 0 too.
func secureAddr(f flags) string {
	if f.sec.secureAddr != "" {
		return f.sec.secureAddr
	}
	host, port := "127.0.0.1", "15012"
	if h, p, err := net.SplitHostPort(f.xdsAddr); err == nil {
		host = h
		if p == "0" {
			port = "0"
		}
	}
	return net.JoinHostPort(host, port)
}

// security is the CA, the join tokens and the secure listener's parts.
type security struct {
	ca      *ca.CA
	tokens  *jointoken.Issuer
	csr     *grpc.Server
	tlsLis  net.Listener
	anon    *certserver.Funnel // TLS connections without a client certificate: CSR
	authed  *certserver.Funnel // TLS connections with an SVID, and 15010's plain ones: xDS
	dataDir string
	serve   func(ctx context.Context) error // the TLS handshakes and the split

	// written are the workloads ("ns/name") whose token file this process
	// has written or found current; the pipeline publishes one snapshot at
	// a time, so no lock.
	written map[string]bool
}

// newSecurity loads the CA, opens the join tokens and listens on the secure
// address. workload returns the latest registry's WorkloadEntry.
func newSecurity(f flags, log *slog.Logger, reg prometheus.Registerer, workload func(ns, name string) *registry.Workload) (*security, error) {
	c, err := ca.Load(ca.Options{DataDir: f.sec.dataDir, CACertsDir: f.sec.cacertsDir,
		TrustDomain: f.sec.trustDomain, WorkloadTTL: f.sec.workloadCertTTL, Logger: log})
	if err != nil {
		return nil, err
	}
	tokens, err := jointoken.Open(f.sec.dataDir)
	if err != nil {
		return nil, err
	}
	var auth certserver.Authenticator = certserver.JoinTokens{Tokens: tokens, Identity: c.Identity,
		ServiceAccount: func(ns, name string) (string, bool) {
			w := workload(ns, name)
			if w == nil {
				return "", false
			}
			return w.ServiceAccount, true
		}}
	if f.sec.kubeconfig != "" {
		if auth, err = kubeAuthenticator(f.sec.kubeconfig, c); err != nil {
			return nil, err
		}
		log.Info("CSR API in Kubernetes mode: service-account tokens checked with TokenReview",
			"component", "certserver", "kubeconfig", f.sec.kubeconfig, "audience", certserver.DefaultAudience)
	}
	srv, err := certserver.New(certserver.Options{CA: c, Registerer: reg, Logger: log, Authenticator: auth})
	if err != nil {
		return nil, err
	}
	addr := secureAddr(f)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen secure: %w", err)
	}
	var ips []net.IP
	if h, _, err := net.SplitHostPort(lis.Addr().String()); err == nil {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	if !slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		ips = append(ips, net.IPv4(127, 0, 0, 1))
	}
	cfg, err := certserver.ServingConfig(c, ips, log)
	if err != nil {
		lis.Close()
		return nil, err
	}
	s := &security{ca: c, tokens: tokens, tlsLis: lis, dataDir: f.sec.dataDir,
		anon: certserver.NewFunnel(lis.Addr()), authed: certserver.NewFunnel(lis.Addr())}
	s.csr = grpc.NewServer()
	srv.Register(s.csr)
	s.serve = func(ctx context.Context) error {
		return certserver.Split(ctx, lis, cfg, s.anon, s.authed, log)
	}
	return s, nil
}

// writeTokens writes the join token of every WorkloadEntry in r.
func (s *security) writeTokens(r *registry.Registry, log *slog.Logger) {
	if r == nil {
		return
	}
	// Only workloads not seen before: a token depends on the namespace and
	// name alone, and reading 11000 token files back on every snapshot cost
	// about 0.2 s before each push (issue 5).
	if s.written == nil {
		s.written = make(map[string]bool, len(r.Workloads))
	}
	var ws []jointoken.Workload
	for k, w := range r.Workloads {
		if !s.written[k] {
			ws = append(ws, jointoken.Workload{Namespace: w.Namespace, Name: w.Name})
		}
	}
	if len(ws) == 0 {
		return
	}
	if err := s.tokens.Write(ws); err != nil {
		log.Warn("writing join tokens", "component", "ca", "error", err)
		return // retried with the next snapshot
	}
	for k := range r.Workloads {
		s.written[k] = true
	}
}
