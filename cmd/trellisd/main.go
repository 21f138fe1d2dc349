// Command trellisd is Trellis's control plane (istiod's role): it reads Istio
// configuration from a directory, builds the service registry, and serves
// Envoy v3 xDS to trellis-proxy sidecars and proxyless gRPC clients.
//
//	--config-dir ──▶ config source ──*config.Set──▶ registry ──▶ snapshot{Version++}
//	                                                               │ xdsserver.Update
//	                                                               ▼
//	                        proxies ◀── ADS on --xds-addr ── xdsserver
//	                        /metrics /ready /debug/syncz /debug/configz on --monitoring-addr
//
// Everything here is wiring; the logic lives in internal packages.
//
// GC policy (gc.go): --memory-limit and --gc-percent set the runtime's soft
// memory limit and GC percentage unless GOMEMLIMIT and GOGC are in the
// environment, as istiod's deployment sets GOMEMLIMIT from its container's
// memory limit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/health"
	"github.com/trellis-mesh/trellis/internal/memlimit"
	"github.com/trellis-mesh/trellis/internal/monitor"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/xdsserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellisd:", err)
		os.Exit(1)
	}
}

type flags struct {
	configDir      string
	xdsAddr        string
	monitoringAddr string
	proxyHTTPPort  uint
	credentialsDir string
	logLevel       slog.Level
	sec            secFlags
	meshConfig     string // mesh.go
	pprofAddr      string // empty: no profiling endpoint
	memoryLimit    memlimit.Size
	gcPercent      int
}

// defaultGCPercent is trellisd's GC percentage unless GOGC or --gc-percent
// says otherwise (gcPolicy): a heap goal 1.5× the live heap instead of the
// runtime's 2×. Most of trellisd's heap is per connected proxy (xDS stream
// state), so the headroom scales with the fleet: with 1000 proxies × 1000
// services RSS per proxy went 0.70 → 0.49 MB (SotW) and 0.87 → 0.56 MB
// (delta) for ~6% more CPU per push; 40 saves little more for 20% (issue
// 5). The memory limit stays the operator's, as istiod's comes from its
// container's limit: a limit below what the fleet needs only burns CPU.
const defaultGCPercent = 50

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("trellisd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configDir, "config-dir", "", "directory of Istio YAML to serve (required)")
	fs.StringVar(&f.credentialsDir, "credentials-dir", "", "where Gateway credentialName NAME finds NAME/{tls.crt,tls.key,ca.crt} (default CONFIG_DIR/credentials)")
	fs.StringVar(&f.xdsAddr, "xds-addr", "127.0.0.1:15010", "address of the plain-text xDS (ADS) gRPC server; empty turns it off (xDS stays on --secure-addr)")
	fs.StringVar(&f.sec.secureAddr, "secure-addr", "", "address of the TLS listener for the CSR API and mTLS xDS (default: the --xds-addr host on port 15012)")
	fs.StringVar(&f.sec.dataDir, "data-dir", defaultDataDir(), "directory of the CA, the join tokens and root-cert.pem")
	fs.StringVar(&f.sec.cacertsDir, "cacerts-dir", "", "plugged-in CA in Istio's layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) (default: DATA_DIR/cacerts)")
	fs.StringVar(&f.sec.trustDomain, "trust-domain", "cluster.local", "trust domain of workload SPIFFE IDs")
	fs.StringVar(&f.sec.kubeconfig, "kubeconfig", "", "Kubernetes mode for the CSR API: proxies authenticate with service-account tokens checked by TokenReview against this kubeconfig's API server (\"in-cluster\": the pod's own); empty: local mode, join tokens")
	fs.DurationVar(&f.sec.workloadCertTTL, "workload-cert-ttl", 24*time.Hour, "lifetime of workload certificates")
	fs.StringVar(&f.monitoringAddr, "monitoring-addr", "127.0.0.1:15014", "address of /metrics, /ready and /debug/*")
	fs.UintVar(&f.proxyHTTPPort, "proxy-http-port", 15080, "port of each sidecar's HTTP-proxy listener (meshConfig.proxyHttpPort); 0 disables it")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "address of Go's /debug/pprof/ endpoints (profiling, e.g. the control-plane benchmark); empty: off")
	fs.StringVar(&f.meshConfig, "mesh-config", "", "Istio MeshConfig YAML (trustDomain, rootNamespace, extensionProviders, pathNormalization, outboundTrafficPolicy)")
	fs.Var(&f.memoryLimit, "memory-limit", "the Go runtime's soft memory limit, in GOMEMLIMIT's syntax (e.g. 2GiB), as istiod gets from its container's limit; 0: none. GOMEMLIMIT in the environment wins")
	fs.IntVar(&f.gcPercent, "gc-percent", defaultGCPercent, "the Go runtime's GC percentage (GOGC); negative: off. GOGC in the environment wins")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.configDir == "" {
		return f, errors.New("--config-dir is required")
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if f.sec.workloadCertTTL <= 0 {
		return f, fmt.Errorf("--workload-cert-ttl %s: must be positive", f.sec.workloadCertTTL)
	}
	if f.sec.dataDir == "" {
		return f, errors.New("--data-dir is required")
	}
	if f.proxyHTTPPort > 65535 {
		return f, fmt.Errorf("--proxy-http-port %d: not a port", f.proxyHTTPPort)
	}
	return f, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	slog.SetDefault(log)
	gcPolicy(f, os.Getenv, log)
	mesh, err := loadMesh(&f, log) // mesh.go
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	xds, err := xdsserver.New(xdsserver.Options{Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	// The pipeline is built below; the CA looks workloads up in its latest
	// snapshot.
	var p *pipeline
	sec, err := newSecurity(f, log, reg, func(ns, name string) *registry.Workload {
		if s := p.current.Load(); s != nil {
			return s.Registry.Workload(ns, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var xdsLis net.Listener // nil when --xds-addr is empty
	xdsWhere := "off"
	if f.xdsAddr != "" {
		if xdsLis, err = net.Listen("tcp", f.xdsAddr); err != nil {
			sec.tlsLis.Close()
			return fmt.Errorf("listen xds: %w", err)
		}
		xdsWhere = xdsLis.Addr().String()
	}
	monLis, err := net.Listen("tcp", f.monitoringAddr)
	if err != nil {
		if xdsLis != nil {
			xdsLis.Close()
		}
		sec.tlsLis.Close()
		return fmt.Errorf("listen monitoring: %w", err)
	}
	var pprofLis net.Listener // nil when --pprof-addr is empty
	if f.pprofAddr != "" {
		if pprofLis, err = net.Listen("tcp", f.pprofAddr); err != nil {
			monLis.Close()
			if xdsLis != nil {
				xdsLis.Close()
			}
			sec.tlsLis.Close()
			return fmt.Errorf("listen pprof: %w", err)
		}
	}

	mesh.CredentialsDir = f.credentialsDir
	if mesh.CredentialsDir == "" {
		mesh.CredentialsDir = filepath.Join(f.configDir, "credentials")
	}
	if abs, err := filepath.Abs(mesh.CredentialsDir); err == nil {
		mesh.CredentialsDir = abs // proxies may run elsewhere
	}
	hc := health.New(health.Options{Logger: log, Registerer: reg})
	p = &pipeline{
		registry: &health.Source{Inner: registry.NewServiceEntrySource(), Checker: hc},
		lint:     analyzeLogger(log),
		mesh:     mesh,
		// Join tokens are written before /ready and before proxies learn of
		// new workloads, so a proxy started on readiness finds its token.
		prepare: func(s *snapshot.Snapshot) { sec.writeTokens(s.Registry, log) },
		update:  xds.Update,
		onFirst: func() {
			log.Info("trellisd ready", "xds", xdsWhere, "monitoring", monLis.Addr().String(),
				"secure", sec.tlsLis.Addr().String(), "data-dir", f.sec.dataDir, "config-dir", f.configDir)
		},
	}
	mon := monitor.Handler(monitor.Options{
		Gatherer: reg,
		Ready:    p.ready, // the listeners are bound above, so xDS is accepting
		Syncz:    xds.Status,
		Config:   p.config,
		Logger:   log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	// goFn runs fn until it returns; the first failure stops everything.
	goFn := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errMu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", name, err)
				}
				errMu.Unlock()
			}
			cancel()
		}()
	}
	// xDS is served on the secure listener's mTLS connections and, unless
	// turned off, on the plain-text listener: both feed one funnel.
	goFn("xds", func() error { return xds.Serve(sec.authed) })
	if xdsLis != nil {
		goFn("xds plaintext", func() error { return sec.authed.Feed(xdsLis) })
	}
	goFn("secure", func() error { return sec.serve(ctx) })
	goFn("csr", func() error { return sec.csr.Serve(sec.anon) })
	goFn("csr shutdown", func() error { <-ctx.Done(); sec.csr.GracefulStop(); return nil })
	goFn("xds shutdown", func() error { <-ctx.Done(); return xds.Close() })
	goFn("monitoring", func() error { return monitor.Serve(ctx, monLis, mon) })
	if pprofLis != nil {
		goFn("pprof", func() error { return servePprof(ctx, pprofLis) })
	}
	goFn("config", func() error { return watchConfig(ctx, f.configDir, log, p.publish) })
	goFn("health", func() error { return hc.Run(ctx) })
	goFn("health push", func() error { return p.followHealth(ctx, hc.Changed()) })
	wg.Wait()
	log.Info("trellisd stopped")
	return first
}

// pipeline turns each new config set into a snapshot and hands it to the
// xDS server. publish is safe for concurrent use (config and health
// changes both publish).
type pipeline struct {
	registry registry.Source
	mesh     snapshot.Mesh
	prepare  func(*snapshot.Snapshot) // nil: nothing; runs before the snapshot is current
	update   func(*snapshot.Snapshot)
	onFirst  func()
	lint     func(*snapshot.Snapshot) // on each new config set; may be nil

	mu      sync.Mutex
	version uint64
	current atomic.Pointer[snapshot.Snapshot]
}

func (p *pipeline) publish(set *config.Set) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishLocked(set)
}

// republish rebuilds the snapshot from the config in force, for changes
// outside the config (health). The config is read under the lock: a set
// loaded before it could be older than one published meanwhile, and
// republishing it would roll the config back.
func (p *pipeline) republish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.current.Load(); s != nil {
		p.publishLocked(s.Config)
	}
}

func (p *pipeline) publishLocked(set *config.Set) {
	p.version++
	snap := &snapshot.Snapshot{Version: p.version, Config: set, Registry: p.registry.Registry(set), Mesh: p.mesh}
	if p.prepare != nil {
		p.prepare(snap)
	}
	prev := p.current.Swap(snap)
	first := prev == nil
	p.update(snap)
	// After the push started: findings are only logged, and analysing
	// 10000 resources must not delay proxies (issue 5).
	if p.lint != nil && (first || prev.Config != set) {
		p.lint(snap)
	}
	if first && p.onFirst != nil {
		p.onFirst()
	}
}

func (p *pipeline) ready() bool { return p.current.Load() != nil }

func (p *pipeline) config() (*config.Set, uint64) {
	s := p.current.Load()
	if s == nil {
		return nil, 0
	}
	return s.Config, s.Version
}
