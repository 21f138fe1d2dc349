package httpproxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	ups "github.com/trellis-mesh/trellis/internal/proxy/upstream"
)

// PoolOptions configure NewPoolsWith. Zero values are documented per field.
type PoolOptions struct {
	// Secrets resolves the SDS names of upstream TLS (transport_socket and
	// transport_socket_matches) at handshake time; nil fails every upstream
	// TLS handshake (plain-text clusters work).
	Secrets runtime.Secrets
	// Clock drives outlier ejection times and slow start; nil: time.Now.
	Clock ups.Clock
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// MirrorConcurrency bounds in-flight mirrored requests; copies beyond
	// it are dropped. 0 means 64.
	MirrorConcurrency int
}

// NewPoolsWith returns empty pools. Their upstream state (circuit breakers,
// outlier detection) and mirrors live until Close.
func NewPoolsWith(opts PoolOptions) *Pools {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Pools{m: map[poolKey]*http.Transport{}}
	p.ext = poolsExt{
		set:     ups.NewSet(ups.Options{Clock: opts.Clock, Logger: log}),
		secrets: opts.Secrets,
		mirrors: newMirrors(opts.MirrorConcurrency, log),
	}
	return p
}

// poolsExt is the upstream half of Pools.
type poolsExt struct {
	set     *ups.Set
	secrets runtime.Secrets
	mirrors *mirrors
	// h1 are the HTTP/1.1 clients by connection settings, guarded by
	// Pools.mu; the ones the latest config does not use are closed.
	h1 map[poolKey]*http1.Client
}

// transportOpts are the comparable connection settings of a transport.
type transportOpts struct {
	tlsKey       string // ups.Key of the TLS settings; "" plain text
	idle         time.Duration
	maxRequests  uint32 // max_requests_per_connection; 0: no limit
	kaIdle, kaIv time.Duration
	kaCount      uint32
	kaOn         bool
}

// upstreamExt is the upstream half of a cluster on the request path.
type upstreamExt struct {
	rc      *runtime.Cluster
	state   *ups.Cluster
	mirrors *mirrors
	// upgrade is net/http's HTTP/1.1 transport, for upgrades (WebSocket):
	// upstream.h1 is an *http1.Client, which does not do them.
	upgrade http.RoundTripper
	// tls holds the transports per TLS setting of the cluster (its
	// transport_socket and each transport_socket_matches entry), resolved
	// on first use: most clusters of a sidecar never see a request, and a
	// TLS transport set (dialers, tls.Configs, key) cost ~4.4 KB per
	// cluster when built eagerly (issue 5).
	tls   []tlsTransports
	pools *Pools
	ct    time.Duration
	base  transportOpts
}

// tlsTransports are a cluster's transports for one upstream TLS setting,
// each looked up in Pools (shared by settings) on first use. Concurrent
// first uses get the same shared transport.
type tlsTransports struct {
	t       *runtime.UpstreamTLS
	h1      atomic.Pointer[http1.Client]
	upgrade atomic.Pointer[http.Transport] // HTTP/1.1 upgrades
	h2      atomic.Pointer[http.Transport]
}

// attach resolves upstream state and transports for the clusters of one
// config. Clusters absent from this config lose their state, and the
// HTTP/1.1 clients no cluster of it uses are closed.
func (p *Pools) attach(clusters map[string]*upstream, rcs map[string]*runtime.Cluster) {
	states := p.ext.set.Update(rcs)
	used := make(map[*http1.Client]bool)
	usedTLS := make(map[poolKey]bool) // HTTP/1.1 TLS clients this config may create
	for name, u := range clusters {
		rc := rcs[name]
		st := states[name]
		u.ext = upstreamExt{rc: rc, state: st, mirrors: p.ext.mirrors}
		u.picker = st
		ct := rc.ConnectTimeout
		if ct <= 0 {
			ct = defaultConnectTimeout
		}
		base := transportOpts{idle: rc.Pool.IdleTimeout, maxRequests: rc.Pool.MaxRequestsPerConnection}
		if ka := rc.Pool.KeepAlive; ka != nil {
			base.kaOn, base.kaIdle, base.kaIv, base.kaCount = true, ka.Time, ka.Interval, ka.Probes
		}
		if base != (transportOpts{}) {
			u.h1 = p.transportWith(false, ct, base, nil)
			u.h2 = p.transportWith(true, ct, base, nil)
		}
		u.ext.upgrade = u.h1
		h1 := p.clientWith(ct, base, nil)
		used[h1] = true
		u.h1 = h1
		u.ext.pools, u.ext.ct, u.ext.base = p, ct, base
		n := 0
		if rc.TLS != nil {
			n++
		}
		for i := range rc.TLSMatches {
			if rc.TLSMatches[i].TLS != nil {
				n++
			}
		}
		if n == 0 {
			continue
		}
		u.ext.tls = make([]tlsTransports, 0, n)
		add := func(t *runtime.UpstreamTLS) {
			if t == nil {
				return
			}
			u.ext.tls = append(u.ext.tls, tlsTransports{t: t})
			// Keep the TLS clients this config may use.
			o := base
			o.tlsKey = ups.Key(t)
			usedTLS[poolKey{connectTimeout: ct, opts: o}] = true
		}
		add(rc.TLS)
		for i := range rc.TLSMatches {
			add(rc.TLSMatches[i].TLS)
		}
	}
	p.mu.Lock()
	var unused []*http1.Client
	for k, c := range p.ext.h1 {
		if !used[c] && !usedTLS[k] {
			unused = append(unused, c)
			delete(p.ext.h1, k)
		}
	}
	kept := make([]*http1.Client, 0, len(p.ext.h1))
	for _, c := range p.ext.h1 {
		kept = append(kept, c)
	}
	p.mu.Unlock()
	for _, c := range unused {
		_ = c.Close() // requests in flight finish, then close their connections
	}
	// Endpoints come and go: an address that is no endpoint of this config
	// loses its pool once the pool is empty (one with idle connections
	// keeps them until its idle timeout; a passthrough destination, never
	// an endpoint, keeps its pool while it has idle connections).
	var endpoints map[string]bool // built on the first empty pool
	isEndpoint := func(addr string) bool {
		if endpoints == nil {
			endpoints = endpointAddrs(rcs)
		}
		return endpoints[addr]
	}
	for _, c := range kept {
		c.Prune(isEndpoint)
	}
}

// endpointAddrs is the set of every endpoint address (host:port) in rcs.
func endpointAddrs(rcs map[string]*runtime.Cluster) map[string]bool {
	n := 0
	for _, rc := range rcs {
		n += len(rc.Endpoints)
	}
	m := make(map[string]bool, n)
	for _, rc := range rcs {
		for i := range rc.Endpoints {
			m[rc.Endpoints[i].Address()] = true
		}
	}
	return m
}

// clientWith returns the shared HTTP/1.1 client for the settings,
// creating it on first use.
func (p *Pools) clientWith(ct time.Duration, o transportOpts, t *runtime.UpstreamTLS) *http1.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := poolKey{connectTimeout: ct, opts: o}
	if c := p.ext.h1[k]; c != nil {
		return c
	}
	dial := p.dialer(ct, o, t)
	idle := o.idle
	if idle <= 0 {
		idle = 90 * time.Second // net/http's default, as the plain transport has
		if o != (transportOpts{}) {
			idle = time.Hour // Envoy's upstream idle_timeout default
		}
	}
	c := http1.NewClient(http1.ClientOptions{
		Dial:                     func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) },
		IdleTimeout:              idle,
		MaxIdlePerHost:           1024,
		MaxRequestsPerConnection: o.maxRequests,
	})
	if p.ext.h1 == nil {
		p.ext.h1 = map[poolKey]*http1.Client{}
	}
	p.ext.h1[k] = c
	return c
}

// closeIdle closes the HTTP/1.1 clients' idle connections; p.mu is held.
func (e *poolsExt) closeIdle() {
	for _, c := range e.h1 {
		c.CloseIdleConnections()
	}
}

// closeClients closes the HTTP/1.1 clients: connections in flight are
// closed after their request.
func (p *Pools) closeClients() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.ext.h1 {
		_ = c.Close()
		delete(p.ext.h1, k)
	}
}

// transportWith returns the shared transport for the settings, creating it
// on first use.
func (p *Pools) transportWith(h2 bool, ct time.Duration, o transportOpts, t *runtime.UpstreamTLS) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := poolKey{h2: h2, connectTimeout: ct, opts: o}
	if tr := p.m[k]; tr != nil {
		return tr
	}
	tr := newTransport(h2, ct)
	tr.DialContext = p.dialer(ct, o, t)
	if o.idle > 0 {
		tr.IdleConnTimeout = o.idle
	} else if o != (transportOpts{}) {
		tr.IdleConnTimeout = time.Hour // Envoy's upstream idle_timeout default
	}
	// net/http counts no requests per connection: it enforces only a
	// limit of one (HTTP/2 streams and upgrades; HTTP/1.1 uses http1).
	tr.DisableKeepAlives = o.maxRequests == 1
	p.m[k] = tr
	return tr
}

// dialer returns the dial function for the settings: TCP with the connect
// timeout and keep-alive options, then the TLS handshake when t is set.
// TLS is layered in the dialer so that a transport keeps speaking its
// configured protocol (h2 with prior knowledge over TLS for HTTP/2
// clusters, as Envoy does with explicit h2).
func (p *Pools) dialer(ct time.Duration, o transportOpts, t *runtime.UpstreamTLS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: ct, KeepAlive: 30 * time.Second}
	if o.kaOn {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: o.kaIdle, Interval: o.kaIv, Count: int(o.kaCount)}
	}
	if t == nil {
		return d.DialContext
	}
	cfg := ups.ClientTLS(t, p.ext.secrets)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := tls.Client(http1.NewWaitConn(raw), cfg) // http1.Client holds requests for the reads of their responses
		hctx, cancel := context.WithTimeout(ctx, ct)
		defer cancel()
		if err := c.HandshakeContext(hctx); err != nil {
			_ = raw.Close()
			// A failed handshake is a connect failure (flag UF), as
			// Envoy counts it.
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		return c, nil
	}
}

// transportForEndpoint returns the transport for an attempt on ep: the TLS
// transport its transport socket match selects, else the plain one.
// HTTP/1.1 goes through an *http1.Client, upgrades through net/http.
func (u *upstream) transportForEndpoint(ep *runtime.Endpoint, downH2, upgrade bool) http.RoundTripper {
	plain := u.transportFor(downH2, upgrade)
	isH2 := plain == u.h2
	if upgrade && u.ext.upgrade != nil {
		plain = u.ext.upgrade
	}
	if u.ext.rc == nil || (u.ext.rc.TLS == nil && len(u.ext.rc.TLSMatches) == 0) {
		return plain
	}
	t := ups.SocketFor(u.ext.rc, ep)
	if t == nil {
		return plain
	}
	tt := u.ext.tlsFor(t)
	switch {
	case tt == nil:
		return plain
	case isH2:
		return tt.transport(&u.ext, true)
	case upgrade:
		return tt.transport(&u.ext, false)
	}
	return tt.h1Client(&u.ext)
}

// tlsFor returns the transports of TLS setting t, one of the cluster's.
func (e *upstreamExt) tlsFor(t *runtime.UpstreamTLS) *tlsTransports {
	for i := range e.tls {
		if e.tls[i].t == t {
			return &e.tls[i]
		}
	}
	return nil
}

// opts are the pool settings of tt's transports.
func (tt *tlsTransports) opts(e *upstreamExt) transportOpts {
	o := e.base
	o.tlsKey = ups.Key(tt.t)
	return o
}

func (tt *tlsTransports) h1Client(e *upstreamExt) *http1.Client {
	if c := tt.h1.Load(); c != nil {
		return c
	}
	c := e.pools.clientWith(e.ct, tt.opts(e), tt.t)
	tt.h1.Store(c)
	return c
}

// transport returns the net/http transport for HTTP/2 or, for upgrades,
// HTTP/1.1.
func (tt *tlsTransports) transport(e *upstreamExt, h2 bool) *http.Transport {
	slot := &tt.upgrade
	if h2 {
		slot = &tt.h2
	}
	if t := slot.Load(); t != nil {
		return t
	}
	t := e.pools.transportWith(h2, e.ct, tt.opts(e), tt.t)
	slot.Store(t)
	return t
}

// exclusive reports whether rt holds a connection per request (HTTP/1.1),
// for max_connections.
func (u *upstream) exclusive(rt http.RoundTripper) bool {
	if rt == u.h2 {
		return false
	}
	for i := range u.ext.tls {
		if h2 := u.ext.tls[i].h2.Load(); h2 != nil && rt == h2 {
			return false
		}
	}
	return true
}

// Pickers returns each cluster's picker in this config: its upstream state
// (an *upstream.Cluster: circuit breakers, outlier detection), so that a
// tcp_proxy on the same cluster shares them with the HTTP path.
func (c *Config) Pickers() map[string]lb.Picker {
	out := make(map[string]lb.Picker, len(c.clusters))
	for name, u := range c.clusters {
		out[name] = u.picker
	}
	return out
}
