package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/httpproxy"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	"github.com/trellis-mesh/trellis/internal/proxy/tcpproxy"
)

// DefaultDrainTimeout bounds how long a removed listener's in-flight
// requests and connections may take to finish (Istio's
// terminationDrainDuration).
const DefaultDrainTimeout = 5 * time.Second

// Options configure a Manager. Zero values are documented per field.
type Options struct {
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// DrainTimeout bounds draining of removed listeners and of Close;
	// 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Registerer receives the request and TCP metrics; nil records none.
	Registerer prometheus.Registerer
	// OnRequest, when set, is called after every HTTP request (an access
	// log); see httpproxy.Options.OnDone.
	OnRequest func(r *http.Request, info *httpproxy.RequestInfo)
	// Secrets resolves the SDS names of TLS filter chains at handshake
	// time; nil fails every TLS handshake.
	Secrets runtime.Secrets
	// AdmitTCP is tcpproxy.Options.Admit for every tcp_proxy chain (the
	// network RBAC hook); nil admits everything.
	AdmitTCP func(down net.Conn, t *runtime.TCPListener) bool
}

// Status is one listener as last applied.
type Status struct {
	Name    string
	Address netip.AddrPort
	Kind    runtime.ListenerKind
	Bound   bool
	Error   string `json:",omitempty"` // why it is not bound
}

// Manager owns the proxy's listening sockets. Apply and Close are
// serialised; Current, Ready and Statuses are safe to call at any time.
type Manager struct {
	opts     Options
	log      *slog.Logger
	pools    *httpproxy.Pools
	httpM    *httpproxy.Metrics
	tcpM     *tcpproxy.Metrics
	current  atomic.Pointer[runtime.Config]
	statuses atomic.Pointer[[]Status]
	ready    atomic.Bool

	mu     sync.Mutex // serialises Apply and Close
	closed bool
	active map[netip.AddrPort]*bound
	wg     sync.WaitGroup // serve and drain goroutines
}

// New returns a manager with nothing bound. It fails only when metrics
// cannot be registered.
func New(opts Options) (*Manager, error) {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{
		opts:   opts,
		log:    log.With("component", "listener"),
		pools:  httpproxy.NewPoolsWith(httpproxy.PoolOptions{Secrets: opts.Secrets, Logger: log}),
		active: map[netip.AddrPort]*bound{},
	}
	if opts.Registerer != nil {
		var err error
		if m.httpM, err = httpproxy.NewMetrics(opts.Registerer); err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
		if m.tcpM, err = tcpproxy.NewMetrics(opts.Registerer); err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
	}
	return m, nil
}

// Current returns the last applied config, or nil before the first Apply.
func (m *Manager) Current() *runtime.Config { return m.current.Load() }

// Ready reports whether a config has been applied with all its listeners
// bound.
func (m *Manager) Ready() bool { return m.ready.Load() }

// Statuses returns the listeners of the last applied config, sorted by name.
func (m *Manager) Statuses() []Status {
	if s := m.statuses.Load(); s != nil {
		return *s
	}
	return nil
}

// Apply makes cfg the running config (see the package doc). It returns the
// bind errors, joined; every listener that could be bound serves cfg
// regardless. cfg MUST NOT be modified afterwards.
func (m *Manager) Apply(cfg *runtime.Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("listener: apply: manager closed")
	}
	pickers := lb.Build(cfg.Clusters)
	hcfg := httpproxy.NewConfig(cfg, pickers, m.pools, m.httpM)
	// tcp_proxy chains pick through the same upstream state as HTTP
	// (circuit breakers, outlier detection).
	pickers = hcfg.Pickers()

	want := make(map[netip.AddrPort]*runtime.Listener, len(cfg.Listeners))
	var errs []error
	statuses := make([]Status, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		if prev := want[l.Address]; prev != nil {
			err := fmt.Errorf("listener %s: address %s already used by %s", l.Name, l.Address, prev.Name)
			errs = append(errs, err)
			statuses = append(statuses, Status{Name: l.Name, Address: l.Address, Kind: l.Kind, Error: err.Error()})
			continue
		}
		want[l.Address] = l
	}
	// 1. Stop listeners that are gone; their sockets close now so that
	// the address can be bound again below.
	for addr, b := range m.active {
		if want[addr] == nil {
			delete(m.active, addr)
			m.drain(b)
		}
	}
	// 2. Swap state into kept listeners (filter chains may change freely:
	// the socket stays), bind new ones.
	for _, l := range cfg.Listeners {
		if want[l.Address] != l {
			continue // duplicate address, reported above
		}
		st := Status{Name: l.Name, Address: l.Address, Kind: l.Kind, Bound: true}
		if b := m.active[l.Address]; b != nil {
			b.update(cfg, hcfg, l, pickers)
		} else if err := m.bind(cfg, hcfg, l, pickers); err != nil {
			errs = append(errs, err)
			st.Bound, st.Error = false, err.Error()
		}
		statuses = append(statuses, st)
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Name < statuses[j].Name })
	m.statuses.Store(&statuses)
	m.current.Store(cfg)
	if len(errs) == 0 {
		m.ready.Store(true)
	}
	m.log.Info("config applied", "version", cfg.Version, "listeners", len(m.active), "errors", len(errs))
	return errors.Join(errs...)
}

func (m *Manager) bind(cfg *runtime.Config, hcfg *httpproxy.Config, l *runtime.Listener, pickers map[string]lb.Picker) error {
	if len(l.Chains()) == 0 && l.DefaultChain == nil {
		return fmt.Errorf("listener %s: no filter chain", l.Name)
	}
	ln, err := net.Listen("tcp", l.Address.String())
	if err != nil {
		return fmt.Errorf("listener %s: bind: %w", l.Name, err)
	}
	log := m.log.With("listener", l.Name)
	b := newBound(ln, l, log, &m.opts, m.tcpM)
	b.update(cfg, hcfg, l, pickers)
	m.active[l.Address] = b
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		err := b.srv.Serve(b.queue)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		if err := b.serve(); err != nil {
			log.Error("listener stopped", "error", err)
		}
	}()
	log.Info("listener bound", "address", ln.Addr().String())
	return nil
}

// drain closes b's socket now and lets its in-flight work finish in the
// background for at most DrainTimeout.
func (m *Manager) drain(b *bound) {
	_ = b.ln.Close()
	b.closePeeking()
	m.log.Info("listener draining", "listener", b.name, "address", b.ln.Addr().String())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.DrainTimeout)
		defer cancel()
		_ = b.queue.Close()
		err := b.srv.Shutdown(ctx)
		if herr := b.h1.Shutdown(ctx); err == nil {
			err = herr
		}
		if err == nil {
			// Shutdown does not track upgraded (hijacked) connections;
			// the request counter does.
			err = waitIdle(ctx, b)
		}
		if terr := b.tcp.Drain(ctx); err == nil {
			err = terr
		}
		// End whatever is left: cancelling the base context also ends
		// upgraded connections and pending TLS handshakes.
		b.cancel()
		_ = b.srv.Close()
		_ = b.h1.Close()
		_ = b.tcp.Close()
		b.conns.Wait()
		if err != nil {
			m.log.Warn("listener drain cut short", "listener", b.name, "error", err)
		}
	}()
}

// waitIdle polls until b serves no HTTP request or ctx is done. Polling is
// fine here: draining is rare and bounded, and the request path stays free
// of any notification cost.
func waitIdle(ctx context.Context, b *bound) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for b.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("listener: drain: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close stops accepting on every listener, drains them (bounded by
// DrainTimeout) and releases upstream connections. Apply fails afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for addr, b := range m.active {
		delete(m.active, addr)
		m.drain(b)
	}
	m.ready.Store(false)
	m.mu.Unlock()
	m.wg.Wait()
	return m.pools.Close()
}
