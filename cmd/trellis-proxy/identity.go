package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/trellis-mesh/trellis/internal/proxy/identity"
)

// Istio's control-plane ports: 15010 plain-text xDS, 15012 TLS (CSR + xDS).
const (
	plainXDSPort  = "15010"
	securePort    = "15012"
	defaultXDSIP  = "127.0.0.1"
	rootCertFile  = "root-cert.pem"
	tokensSubdir  = "tokens"
	plainXDSAddr  = defaultXDSIP + ":" + plainXDSPort
	secureXDSAddr = defaultXDSIP + ":" + securePort
)

// idFlags are the workload-identity flags (issue 4, points 3 and 4).
type idFlags struct {
	dataDir      string
	caAddr       string // empty: derived, see plan
	caRoot       string // empty: DATA_DIR/root-cert.pem
	tokenFile    string // empty: DATA_DIR/tokens/NS/NAME
	xdsPlaintext bool
}

// defaultDataDir is the per-user state directory shared with trellisd:
// $XDG_STATE_HOME/trellis, else ~/.local/state/trellis.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "trellis")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "trellis")
	}
	return filepath.Join(os.TempDir(), "trellis-"+fmt.Sprint(os.Getuid()))
}

// connPlan is how the proxy reaches the control plane.
type connPlan struct {
	identity  bool   // fetch a workload certificate
	caAddr    string // CSR API
	tokenFile string
	caRoot    string
	xds       string // xDS address
	xdsTLS    bool   // xDS over mTLS with the workload certificate
}

// plan resolves the identity and xDS flags:
//   - identity is on when the join token exists (an explicit
//     --join-token-file must exist);
//   - the CA is --ca-addr, else --xds when it names a port other than
//     15010, else the --xds host (127.0.0.1 by default) on 15012;
//   - xDS goes over mTLS when there is an identity, unless --xds-plaintext
//     or an explicit --xds on Istio's plain-text port 15010; without --xds it
//     is the CA's address over mTLS, or 127.0.0.1:15010 in plain text.
func plan(f flags) (connPlan, error) {
	id := f.id
	p := connPlan{caRoot: id.caRoot, tokenFile: id.tokenFile, caAddr: id.caAddr}
	if p.caRoot == "" {
		p.caRoot = filepath.Join(id.dataDir, rootCertFile)
	}
	if p.tokenFile == "" {
		p.tokenFile = filepath.Join(id.dataDir, tokensSubdir, f.namespace, f.name)
	}
	_, err := os.Stat(p.tokenFile)
	switch {
	case err == nil:
		p.identity = true
	case id.tokenFile != "" || !errors.Is(err, fs.ErrNotExist):
		return p, fmt.Errorf("--join-token-file: %w", err)
	}
	if p.identity {
		if _, err := os.Stat(p.caRoot); err != nil {
			return p, fmt.Errorf("--ca-root: %w", err)
		}
	}
	xdsHost, xdsPort := defaultXDSIP, ""
	if f.xds != "" {
		h, port, err := net.SplitHostPort(f.xds)
		if err != nil {
			return p, fmt.Errorf("--xds: %w", err)
		}
		xdsHost, xdsPort = h, port
	}
	if p.caAddr == "" {
		if f.xds != "" && xdsPort != plainXDSPort {
			p.caAddr = f.xds
		} else {
			p.caAddr = net.JoinHostPort(xdsHost, securePort)
		}
	}
	switch {
	case f.xds != "":
		p.xds = f.xds
		p.xdsTLS = p.identity && !id.xdsPlaintext && xdsPort != plainXDSPort
	case p.identity && !id.xdsPlaintext:
		p.xds, p.xdsTLS = p.caAddr, true
	default:
		p.xds = plainXDSAddr
	}
	return p, nil
}

// newAgent builds the identity agent for p, or returns nil when p has no
// identity.
func newAgent(f flags, p connPlan, reg prometheus.Registerer, log *slog.Logger) (*identity.Agent, error) {
	if !p.identity {
		return nil, nil
	}
	return identity.New(identity.Options{
		CAAddr: p.caAddr, Namespace: f.namespace, Workload: f.name,
		TokenFile: p.tokenFile, RootFile: p.caRoot, Registerer: reg, Logger: log,
	})
}

// xdsDialOptions are the xDS client's transport credentials for p: mTLS
// with the agent's current certificate, or none (plain text).
func xdsDialOptions(p connPlan, a *identity.Agent) []grpc.DialOption {
	if !p.xdsTLS || a == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(a.XDSTLSConfig()))}
}
