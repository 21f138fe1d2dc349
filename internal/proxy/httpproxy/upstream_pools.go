package httpproxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"

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
}

// transportOpts are the comparable connection settings of a transport.
type transportOpts struct {
	tlsKey       string // ups.Key of the TLS settings; "" plain text
	idle         time.Duration
	noKeepAlive  bool // max_requests_per_connection: 1
	kaIdle, kaIv time.Duration
	kaCount      uint32
	kaOn         bool
}

// upstreamExt is the upstream half of a cluster on the request path.
type upstreamExt struct {
	rc      *runtime.Cluster
	state   *ups.Cluster
	mirrors *mirrors
	// tls holds h1/h2 transports per TLS setting of the cluster (its
	// transport_socket and each transport_socket_matches entry).
	tls map[*runtime.UpstreamTLS]*[2]http.RoundTripper
}

// attach resolves upstream state and transports for the clusters of one
// config. Clusters absent from this config lose their state.
func (p *Pools) attach(clusters map[string]*upstream, rcs map[string]*runtime.Cluster) {
	states := p.ext.set.Update(rcs)
	for name, u := range clusters {
		rc := rcs[name]
		st := states[name]
		u.ext = upstreamExt{rc: rc, state: st, mirrors: p.ext.mirrors}
		u.picker = st
		ct := rc.ConnectTimeout
		if ct <= 0 {
			ct = defaultConnectTimeout
		}
		base := transportOpts{idle: rc.Pool.IdleTimeout, noKeepAlive: rc.Pool.MaxRequestsPerConnection == 1}
		if ka := rc.Pool.KeepAlive; ka != nil {
			base.kaOn, base.kaIdle, base.kaIv, base.kaCount = true, ka.Time, ka.Interval, ka.Probes
		}
		if base != (transportOpts{}) {
			u.h1 = p.transportWith(false, ct, base, nil)
			u.h2 = p.transportWith(true, ct, base, nil)
		}
		add := func(t *runtime.UpstreamTLS) {
			if t == nil {
				return
			}
			if u.ext.tls == nil {
				u.ext.tls = map[*runtime.UpstreamTLS]*[2]http.RoundTripper{}
			}
			o := base
			o.tlsKey = ups.Key(t)
			u.ext.tls[t] = &[2]http.RoundTripper{p.transportWith(false, ct, o, t), p.transportWith(true, ct, o, t)}
		}
		add(rc.TLS)
		for i := range rc.TLSMatches {
			add(rc.TLSMatches[i].TLS)
		}
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
	d := &net.Dialer{Timeout: ct, KeepAlive: 30 * time.Second}
	if o.kaOn {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: o.kaIdle, Interval: o.kaIv, Count: int(o.kaCount)}
	}
	tr.DialContext = d.DialContext
	if o.idle > 0 {
		tr.IdleConnTimeout = o.idle
	} else if o != (transportOpts{}) {
		tr.IdleConnTimeout = time.Hour // Envoy's upstream idle_timeout default
	}
	tr.DisableKeepAlives = o.noKeepAlive
	if t != nil {
		// TLS is layered in the dialer so that the transport keeps
		// speaking its configured protocol (h2 with prior knowledge over
		// TLS for HTTP/2 clusters, as Envoy does with explicit h2).
		cfg := ups.ClientTLS(t, p.ext.secrets)
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, cfg)
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
	p.m[k] = tr
	return tr
}

// transportForEndpoint returns the transport for an attempt on ep: the TLS
// transport its transport socket match selects, else the plain one.
func (u *upstream) transportForEndpoint(ep *runtime.Endpoint, downH2, upgrade bool) http.RoundTripper {
	plain := u.transportFor(downH2, upgrade)
	if u.ext.rc == nil || (u.ext.rc.TLS == nil && len(u.ext.rc.TLSMatches) == 0) {
		return plain
	}
	t := ups.SocketFor(u.ext.rc, ep)
	if t == nil {
		return plain
	}
	pair := u.ext.tls[t]
	if pair == nil {
		return plain
	}
	if plain == u.h2 {
		return pair[1]
	}
	return pair[0]
}

// exclusive reports whether rt holds a connection per request (HTTP/1.1),
// for max_connections.
func (u *upstream) exclusive(rt http.RoundTripper) bool {
	if rt == u.h2 {
		return false
	}
	for _, pair := range u.ext.tls {
		if rt == pair[1] {
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
