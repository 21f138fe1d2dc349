// Command trellis-proxy is Trellis's data-plane proxy (Envoy's role in
// Istio): it follows trellisd over ADS and serves the workload's listeners.
//
//	trellisd ──ADS──▶ xdsclient ──1 *runtime.Config──▶ listener.Manager.Apply
//	                                                    │ 2 bind / swap / drain
//	                                                    ▼
//	app ◀──▶ listeners (httpproxy, tcpproxy) ◀──▶ upstreams
//	admin :15000, readiness :15021, metrics :15090 on the workload's address
//
// Everything here is wiring; the logic lives in internal/proxy/*. The binary
// stays lean: no Kubernetes, Istio or control-plane packages.
//
// Build it with -tags grpcnotrace (make build and the benchmark harness do).
// Without the tag grpc links golang.org/x/net/trace, which links
// html/template; text/template calls methods by name through reflection, so
// the linker must then keep every exported method of every reachable type
// (all the Envoy protos' getters, for one). The tag takes the binary from
// 37.9 MB to 30.6 MB and its mapped text, rodata and pclntab from 25.1 to
// 20.5 MB; on Linux a Go binary's pages are mostly resident, so that is idle
// RSS (issue 5). TestBinaryDependencies keeps templates out. Nor does the
// proxy call the generated protoc-gen-validate Validate methods (compile
// checks the fields it reads instead): 30.7 MB to 23.8 MB, text 20.6 to
// 16.0 MB.
//
// GC policy: --memory-limit sets the runtime's soft memory limit (default
// none) and --gc-percent its GC percentage (default 50: a heap goal 1.5×
// the live heap) unless GOMEMLIMIT or GOGC is in the environment, which the
// runtime has already read.
//
// Where a sidecar's memory goes (issue 5; 100 services, idle, 24.2 MB
// VmRSS). File pages, 14.9 MB: the binary's text, rodata and pclntab, nearly
// all resident whatever the config. Tracing page faults (perf record -e
// page-faults -d) shows 105 faults mapping 1660 of 1676 text pages: the
// kernel maps the 64 KB around a fault, and package init code lies in
// every 64 KB of text, so what is resident is the binary's loaded size
// (16.0 MB), not the features that run. Lazy initialisation does not lower
// it; linking less code does. -ldflags=-s -w changes no mapped byte (it
// drops unmapped symbol tables), -trimpath 20 KB of pclntab. Anonymous,
// 9.5 MB: a live heap of 4.0 MB, 3.3 MB of it protobuf-go's descriptors and
// message metadata for the Envoy types (registered at init for every linked
// file, and completed on first decode for every file reachable from a
// decoded type, which protobuf-go walks looking for required fields), the
// rest the parsed config; garbage since the last GC and partly used spans
// 3 MB; runtime metadata 1.3 MB; stacks 0.6 MB; written data pages 0.5 MB.
// With no config at all the proxy is at 18.7 MB (14.0 file, 4.7 anonymous);
// a stdlib-only Go server with the same three ports and one mTLS exchange
// is at 7.4 MB.
//
// Hence --release-start-pages (default on): once start-up is over (the
// first config serving, the workload certificate in hand, then a second),
// the proxy unmaps the binary's read-only mappings with MADV_DONTNEED and
// returns freed heap (internal/proxy/residency). What runs afterwards
// faults back in from the page cache, a 64 KB window at a time: idle
// RssFile 14.9 → 6.3 MB, ~5 MB of it rodata and pclntab that the GC's
// stack scans and type lookups read; at 1000 rps ~12 MB, ~8 MB the request
// path and ~4 MB code that runs once per connection (TLS handshakes) and
// stays mapped (README "Where targets are still missed").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trellis-mesh/trellis/internal/memlimit"
	"github.com/trellis-mesh/trellis/internal/proxy/admin"
	"github.com/trellis-mesh/trellis/internal/proxy/listener"
	"github.com/trellis-mesh/trellis/internal/proxy/residency"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	"github.com/trellis-mesh/trellis/internal/proxy/secrets"
	"github.com/trellis-mesh/trellis/internal/proxy/tcpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/xdsclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-proxy:", err)
		os.Exit(1)
	}
}

type flags struct {
	xds          string
	namespace    string
	name         string
	gateway      bool
	address      netip.Addr // invalid: learn from the first config
	delta        bool
	adminPort    uint
	healthPort   uint
	statsPort    uint
	drainTimeout time.Duration
	logLevel     slog.Level
	memoryLimit  memlimit.Size
	gcPercent    int
	releaseStart bool
	id           idFlags
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT or --memory-limit says otherwise. Istio's agent derives
// GOMEMLIMIT from the container limit; a sidecar here has none, so the
// proxy may set one that keeps the heap near issue 5's RSS target at load.
// It is soft: a heap that needs more gets more, the GC just runs more often
// on the way (see README "Performance" for the RSS and CPU it trades).
const defaultMemoryLimit memlimit.Size = 0

// defaultGCPercent is the proxy's GC percentage unless GOGC or
// --gc-percent says otherwise: a heap goal 1.5× the live heap instead of
// the runtime's 2×, as trellisd's. A sidecar's anonymous memory is about
// twice its live heap plus a fixed runtime share, at load and after a
// config push alike. Measured with the benchmark's memory scenario (two
// runs each, 30 s at 1000 rps, mTLS): with 100 services RSS at load
// 33.6–34.1 → 31.0–31.1 MB; idle with 1000 services 38.8–39.1 → 36.7 MB
// and with 100 × 50 endpoints 36.0–36.4 → 31.8–32.5 MB. The cost: GC cycles
// at 1000 rps went 0.83 → 1.8 per second and the background mark workers'
// CPU 2.9 → 5.0 ms per second, +0.002 vCPU per 1000 rps (~3% of the
// sidecar's 0.06–0.07), within the noise of the whole-process figure
// (issue 5).
const defaultGCPercent = 50

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	f := flags{memoryLimit: defaultMemoryLimit, gcPercent: defaultGCPercent, releaseStart: true}
	var workload, address string
	fs := flag.NewFlagSet("trellis-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.xds, "xds", "", "control plane xDS address (default: the CA's address over mTLS once the proxy has an identity, else 127.0.0.1:15010 in plain text; an address on port 15010 is plain text)")
	fs.BoolVar(&f.id.xdsPlaintext, "xds-plaintext", false, "follow xDS in plain text even with an identity (127.0.0.1:15010 unless --xds)")
	fs.StringVar(&f.id.dataDir, "data-dir", defaultDataDir(), "trellisd's data directory, where the join token and root-cert.pem are found")
	fs.StringVar(&f.id.caAddr, "ca-addr", "", "trellisd's CSR API (default: --xds unless it is on port 15010, else its host on port 15012)")
	fs.StringVar(&f.id.caRoot, "ca-root", "", "roots that verify trellisd (default: DATA_DIR/root-cert.pem)")
	fs.StringVar(&f.id.tokenFile, "join-token-file", "", "the workload's join token (default: DATA_DIR/tokens/NAMESPACE/NAME; without it the proxy runs with no identity)")
	fs.StringVar(&workload, "workload", "", "the WorkloadEntry this proxy fronts, NAMESPACE/NAME (required)")
	fs.BoolVar(&f.gateway, "gateway", false, "run as a gateway (node type router)")
	fs.StringVar(&address, "address", "", "the workload's address; empty: learn it from the first config")
	fs.BoolVar(&f.delta, "xds-delta", true, "use incremental xDS; false: state of the world")
	fs.UintVar(&f.adminPort, "admin-port", admin.DefaultAdminPort, "admin port")
	fs.UintVar(&f.healthPort, "health-port", admin.DefaultHealthPort, "readiness port (/healthz/ready)")
	fs.UintVar(&f.statsPort, "stats-port", admin.DefaultStatsPort, "metrics port (/stats/prometheus)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", listener.DefaultDrainTimeout, "how long removed listeners and shutdown drain in-flight work")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.Var(&f.memoryLimit, "memory-limit", "the Go runtime's soft memory limit, in GOMEMLIMIT's syntax (e.g. 24MiB); 0: none. GOMEMLIMIT in the environment wins")
	fs.IntVar(&f.gcPercent, "gc-percent", f.gcPercent, "the Go runtime's GC percentage (GOGC); negative: off. GOGC in the environment wins")
	fs.BoolVar(&f.releaseStart, "release-start-pages", f.releaseStart, "once start-up is over (the first config serving, the workload certificate in hand, then a second), unmap the binary's pages that start-up touched (they stay in the page cache; what runs faults back in) and return freed heap to the kernel")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	ns, name, ok := strings.Cut(workload, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return f, fmt.Errorf("--workload %q: want NAMESPACE/NAME", workload)
	}
	f.namespace, f.name = ns, name
	if address != "" {
		a, err := netip.ParseAddr(address)
		if err != nil {
			return f, fmt.Errorf("--address: %w", err)
		}
		if a.IsUnspecified() {
			return f, fmt.Errorf("--address %s: want the workload's own address, not a wildcard", a)
		}
		f.address = a
	}
	for flagName, p := range map[string]uint{"admin-port": f.adminPort, "health-port": f.healthPort, "stats-port": f.statsPort} {
		if p == 0 || p > 65535 {
			return f, fmt.Errorf("--%s %d: not a port", flagName, p)
		}
	}
	if f.drainTimeout <= 0 {
		return f, fmt.Errorf("--drain-timeout %s: must be positive", f.drainTimeout)
	}
	return f, nil
}

// startSettle is how long after the first config serves (and the
// workload certificate is in hand) start-up counts as over: listeners
// accepting, the admin servers and the stream's first acknowledgements run
// code once that would otherwise stay mapped.
const startSettle = time.Second

// releaseAfterStart hands back what start-up left resident once it is
// over: the binary's pages that package initialisation, the first
// certificate and the first config touched, and heap freed since
// (internal/proxy/residency). A nil certified channel means no identity.
func releaseAfterStart(ctx context.Context, configured, certified <-chan struct{}, log *slog.Logger) {
	for _, c := range []<-chan struct{}{configured, certified} {
		if c == nil {
			continue
		}
		select {
		case <-c:
		case <-ctx.Done():
			return
		}
	}
	t := time.NewTimer(startSettle)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return
	}
	// Logged before: logging after would map the logger's code back in.
	log.Info("releasing start-up pages")
	if _, err := residency.Release(); err != nil {
		log.Warn("start-up pages not released", "error", err)
	}
}

// nodeID is Istio's TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local
// (docs/xds.md, "Node identity").
func nodeID(f flags) string {
	typ := "sidecar"
	if f.gateway {
		typ = "router"
	}
	ip := ""
	if f.address.IsValid() {
		ip = f.address.String()
	}
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", typ, ip, f.name, f.namespace, f.namespace)
}

// learnAddress picks the workload's address from a config: the first
// inbound listener's, else the HTTP proxy listener's, else the first
// listener's. A wildcard (a gateway on 0.0.0.0) stands for loopback.
func learnAddress(cfg *runtime.Config) (netip.Addr, bool) {
	var pick *runtime.Listener
	for _, l := range cfg.Listeners {
		if l.Direction == runtime.Inbound {
			pick = l
			break
		}
	}
	if pick == nil {
		for _, l := range cfg.Listeners {
			if l.Name == "http_proxy" {
				pick = l
				break
			}
		}
	}
	if pick == nil && len(cfg.Listeners) > 0 {
		pick = cfg.Listeners[0]
	}
	if pick == nil {
		return netip.Addr{}, false
	}
	a := pick.Address.Addr()
	if a.IsUnspecified() {
		a = netip.MustParseAddr("127.0.0.1")
	}
	return a, true
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	log = log.With("workload", f.namespace+"/"+f.name)
	memLimit, memFrom := memlimit.Apply(f.memoryLimit, os.Getenv)
	gcPct, gcFrom := memlimit.ApplyGCPercent(f.gcPercent, os.Getenv)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cp, err := plan(f)
	if err != nil {
		return err
	}
	agent, err := newAgent(f, cp, reg, log)
	if err != nil {
		return err
	}
	lopts := listener.Options{Logger: log, DrainTimeout: f.drainTimeout, Registerer: reg,
		AdmitTCP: tcpproxy.AdmitRBAC} // envoy.filters.network.rbac on tcp_proxy chains
	// File-based SDS names (a Gateway's credentialName in local mode) are
	// served from files; the rest ("default", "ROOTCA") by the agent.
	fileSecrets := secrets.Options{Logger: log}
	if agent != nil {
		fileSecrets.Fallback = agent
	}
	lopts.Secrets = secrets.New(fileSecrets)
	mgr, err := listener.New(lopts)
	if err != nil {
		return err
	}

	// The admin servers start once the address is known: from the flag,
	// or from the first config that has a listener.
	addrc := make(chan netip.Addr, 1)
	if f.address.IsValid() {
		addrc <- f.address
	}
	var learnOnce, configuredOnce sync.Once
	configured := make(chan struct{}) // closed by the first config
	client := xdsclient.New(xdsclient.Options{
		Server:      cp.xds,
		Node:        &corev3.Node{Id: nodeID(f), Cluster: f.name + "." + f.namespace},
		Delta:       f.delta,
		DialOptions: xdsDialOptions(cp, agent),
		Logger:      log,
		OnConfig: func(cfg *runtime.Config) {
			if err := mgr.Apply(cfg); err != nil {
				log.Error("config applied with errors", "version", cfg.Version, "error", err)
			}
			configuredOnce.Do(func() { close(configured) })
			if f.address.IsValid() {
				return
			}
			if a, ok := learnAddress(cfg); ok {
				learnOnce.Do(func() { addrc <- a })
			}
		},
	})

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(2)
	if agent != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(ctx); err != nil {
				errc <- fmt.Errorf("identity: %w", err)
			}
		}()
	}
	go func() {
		defer wg.Done()
		if cp.xdsTLS { // mTLS needs the first certificate
			select {
			case <-agent.Ready():
			case <-ctx.Done():
				return
			}
		}
		// The client keeps the last config when trellisd goes away; the
		// listeners keep serving it.
		if err := client.Run(ctx); err != nil {
			errc <- fmt.Errorf("xds: %w", err)
		}
	}()
	if f.releaseStart {
		var certified <-chan struct{} // nil: no identity to wait for
		if agent != nil {
			certified = agent.Ready()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			releaseAfterStart(ctx, configured, certified, log)
		}()
	}
	go func() {
		defer wg.Done()
		var a netip.Addr
		select {
		case a = <-addrc:
		case <-ctx.Done():
			return
		}
		srv, err := admin.New(admin.Options{
			Address: a, AdminPort: uint16(f.adminPort), HealthPort: uint16(f.healthPort), StatsPort: uint16(f.statsPort),
			Source: mgr, Gatherer: reg, Logger: log,
		})
		if err == nil {
			err = srv.Run(ctx)
		}
		if err != nil {
			errc <- err
		}
	}()

	log.Info("starting", "xds", cp.xds, "xds_tls", cp.xdsTLS, "identity", cp.identity, "ca", cp.caAddr,
		"node", nodeID(f), "delta", f.delta, "memory_limit", memLimit, "memory_limit_from", memFrom,
		"gc_percent", gcPct, "gc_percent_from", gcFrom)
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining listeners", "drain_timeout", f.drainTimeout)
	case runErr = <-errc:
		log.Error("stopping", "error", runErr)
	}
	// Stop accepting and drain first, then stop the control-plane stream
	// and the admin servers.
	closeErr := mgr.Close()
	cancel()
	wg.Wait()
	log.Info("stopped")
	return errors.Join(runErr, closeErr)
}
