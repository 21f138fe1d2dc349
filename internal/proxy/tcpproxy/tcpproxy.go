package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	ups "github.com/trellis-mesh/trellis/internal/proxy/upstream"
)

const defaultConnectTimeout = 10 * time.Second

// Metrics records Istio's TCP metrics. A nil *Metrics records nothing.
type Metrics struct {
	opened, closed, sent, received *prometheus.CounterVec
}

// NewMetrics registers istio_tcp_connections_opened_total,
// istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total and
// istio_tcp_received_bytes_total on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"reporter", "destination_cluster", "response_flags"}
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		opened:   vec("istio_tcp_connections_opened_total", "TCP connections opened."),
		closed:   vec("istio_tcp_connections_closed_total", "TCP connections closed."),
		sent:     vec("istio_tcp_sent_bytes_total", "Bytes sent to the downstream."),
		received: vec("istio_tcp_received_bytes_total", "Bytes received from the downstream."),
	}
	for _, c := range []prometheus.Collector{m.opened, m.closed, m.sent, m.received} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("tcpproxy metrics: %w", err)
		}
	}
	return m, nil
}

// stats are one reporter/cluster's counters, curried once per config.
type stats struct {
	opened, closed, sent, received prometheus.Counter
	m                              *Metrics
	reporter, cluster              string
}

func (m *Metrics) stats(dir runtime.Direction, cluster string) *stats {
	if m == nil {
		return nil
	}
	rep := "source"
	if dir == runtime.Inbound {
		rep = "destination"
	}
	return &stats{
		opened:   m.opened.WithLabelValues(rep, cluster, "-"),
		closed:   m.closed.WithLabelValues(rep, cluster, "-"),
		sent:     m.sent.WithLabelValues(rep, cluster, "-"),
		received: m.received.WithLabelValues(rep, cluster, "-"),
		m:        m, reporter: rep, cluster: cluster,
	}
}

// failed records a connection that never reached an upstream.
func (s *stats) failed(flag string) {
	if s == nil {
		return
	}
	s.m.opened.WithLabelValues(s.reporter, s.cluster, flag).Inc()
	s.m.closed.WithLabelValues(s.reporter, s.cluster, flag).Inc()
}

// Options configure a Proxy. Zero values are documented per field.
type Options struct {
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// Metrics; nil records nothing.
	Metrics *Metrics
	// Admit runs before an upstream is picked, with the downstream
	// connection (a *tls.Conn whose handshake is complete when the filter
	// chain terminates TLS) and the chain's tcp_proxy. Returning false
	// closes the connection: network filters that deny (RBAC, issue 4)
	// hook in here. nil admits everything.
	Admit func(down net.Conn, t *runtime.TCPListener) bool
	// Secrets resolves the SDS names of upstream TLS (a cluster's
	// transport_socket and transport_socket_matches: Istio's auto mTLS) at
	// handshake time; nil fails every upstream TLS handshake.
	Secrets runtime.Secrets
}

// Proxy proxies the connections of one listener's TCP chains: the listener
// accepts, picks the chain's Route and calls Handle.
type Proxy struct {
	log     *slog.Logger
	metrics *Metrics
	admit   func(net.Conn, *runtime.TCPListener) bool
	secrets runtime.Secrets

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // downstream and upstream conns, for Close
	active sync.WaitGroup        // connection handlers
	idle   chan struct{}         // closed and replaced when conns becomes empty
}

// Route is what one tcp_proxy does with a connection: built by
// Proxy.Route, immutable, and handed to Handle.
type Route struct {
	tcp   *runtime.TCPListener
	dests []dest
	total uint64
}

type dest struct {
	name    string
	weight  uint64
	picker  lb.Picker
	timeout time.Duration
	stats   *stats
	// state is the cluster's shared upstream state when picker is one:
	// max_connections and outlier detection. nil: neither.
	state *ups.Cluster
	rc    *runtime.Cluster // nil when the cluster is unknown
	// tls holds the client config of each of rc's transport sockets.
	tls map[*runtime.UpstreamTLS]*tls.Config
}

// New returns a proxy; it handles what Handle gives it.
func New(opts Options) *Proxy {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Proxy{
		log:     log.With("component", "tcpproxy"),
		metrics: opts.Metrics,
		admit:   opts.Admit,
		secrets: opts.Secrets,
		conns:   map[net.Conn]struct{}{},
		idle:    make(chan struct{}),
	}
}

// Route builds what Handle needs for one tcp_proxy t of cfg, on a listener
// of direction dir. A nil t refuses every connection. A picker that is an
// *upstream.Cluster also brings its circuit breakers and outlier detection.
func (p *Proxy) Route(cfg *runtime.Config, dir runtime.Direction, t *runtime.TCPListener, pickers map[string]lb.Picker) *Route {
	st := &Route{tcp: t}
	if t != nil {
		for _, wc := range t.Clusters {
			w := uint64(wc.Weight)
			if len(t.Clusters) == 1 && w == 0 {
				w = 1
			}
			d := dest{name: wc.Name, weight: w, picker: pickers[wc.Name], timeout: defaultConnectTimeout,
				stats: p.metrics.stats(dir, wc.Name)}
			d.state, _ = d.picker.(*ups.Cluster)
			if c := cfg.Clusters[wc.Name]; c != nil {
				d.rc = c
				if c.ConnectTimeout > 0 {
					d.timeout = c.ConnectTimeout
				}
				d.tls = p.clientTLS(c)
			}
			st.dests = append(st.dests, d)
			st.total += w
		}
	}
	return st
}

func (st *Route) pick() *dest {
	if st == nil || st.total == 0 {
		return nil
	}
	x := rand.Uint64N(st.total)
	for i := range st.dests {
		if x < st.dests[i].weight {
			return &st.dests[i]
		}
		x -= st.dests[i].weight
	}
	return &st.dests[len(st.dests)-1]
}

// track registers c; it fails once Close has run.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return
	}
	delete(p.conns, c)
	if len(p.conns) == 0 {
		close(p.idle)
		p.idle = make(chan struct{})
	}
}

// Handle proxies down by r until either side ends, then closes it. It
// blocks; Close and Drain account for the connection while it runs.
func (p *Proxy) Handle(down net.Conn, r *Route) {
	p.active.Add(1)
	defer p.active.Done()
	if !p.track(down) {
		_ = down.Close()
		return
	}
	p.serve(down, r)
}

func (p *Proxy) serve(down net.Conn, r *Route) {
	defer p.untrack(down)
	defer down.Close()
	if p.admit != nil && r != nil && !p.admit(down, r.tcp) {
		return
	}
	d := r.pick()
	if d == nil || d.picker == nil {
		if d != nil {
			d.stats.failed("UH")
		}
		return
	}
	pick, ok := d.picker.Pick()
	if !ok {
		d.stats.failed("UH")
		return
	}
	defer pick.Done()
	if d.state != nil {
		release, ok := d.state.Breakers.Connect()
		if !ok {
			d.stats.failed("UO")
			p.log.Debug("circuit breaker overflow", "cluster", d.name, "upstream", pick.Addr)
			return
		}
		defer release()
	}
	up, raw, err := p.dial(d, pick)
	if errors.Is(err, errClosing) {
		return
	}
	if err != nil {
		d.stats.failed("UF")
		p.log.Debug("connect failed", "cluster", d.name, "upstream", pick.Addr, "error", err)
		return
	}
	defer p.untrack(raw)
	defer up.Close()
	if d.stats != nil {
		d.stats.opened.Inc()
		defer d.stats.closed.Inc()
	}

	received := make(chan int64, 1)
	go func() { received <- pipe(up, down) }() // owned: handle waits below
	sent := pipe(down, up)
	got := <-received
	if d.stats != nil {
		d.stats.sent.Add(float64(sent))
		d.stats.received.Add(float64(got))
	}
}

// pipe copies src to dst. On EOF it half-closes dst so that the peer sees
// the end of the stream while the other direction keeps flowing; on error
// it closes both so that the other direction ends too.
func pipe(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	if err != nil {
		_ = dst.Close()
		_ = src.Close()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	return n
}

// Drain waits until every connection has ended or ctx is done; in the
// latter case it closes the remaining ones. It returns ctx's error when it
// had to cut connections.
func (p *Proxy) Drain(ctx context.Context) error {
	for {
		p.mu.Lock()
		if len(p.conns) == 0 {
			p.mu.Unlock()
			return nil
		}
		idle := p.idle
		p.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			_ = p.Close()
			return fmt.Errorf("tcpproxy: drain: %w", ctx.Err())
		}
	}
}

// Close closes every open connection and waits for their handlers. The
// caller closes the listener Serve runs on.
func (p *Proxy) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	p.active.Wait()
	return nil
}
