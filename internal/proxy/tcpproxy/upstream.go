package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
	ups "github.com/trellis-mesh/trellis/internal/proxy/upstream"
)

// errClosing is dial's answer once Close has run: not an upstream failure.
var errClosing = errors.New("tcpproxy: closing")

// clientTLS builds the client config of each of c's transport sockets
// (transport_socket and transport_socket_matches) once per config; key
// material is resolved from p's Secrets at every handshake.
func (p *Proxy) clientTLS(c *runtime.Cluster) map[*runtime.UpstreamTLS]*tls.Config {
	var out map[*runtime.UpstreamTLS]*tls.Config
	add := func(t *runtime.UpstreamTLS) {
		if t == nil {
			return
		}
		if out == nil {
			out = map[*runtime.UpstreamTLS]*tls.Config{}
		}
		out[t] = ups.ClientTLS(t, p.secrets)
	}
	add(c.TLS)
	for i := range c.TLSMatches {
		add(c.TLSMatches[i].TLS)
	}
	return out
}

// socket returns the TLS client config for connections to ep, nil for
// plain text (Envoy's raw_buffer).
func (d *dest) socket(ep *runtime.Endpoint) *tls.Config {
	if d.rc == nil || len(d.tls) == 0 {
		return nil
	}
	if t := ups.SocketFor(d.rc, ep); t != nil {
		return d.tls[t]
	}
	return nil
}

// dial connects to pick within d's connect timeout, TLS handshake
// included, and reports the outcome to outlier detection as Envoy's
// tcp_proxy does: a failure, a timeout or a final success, all local-origin.
// up is what to proxy over; raw is the TCP connection, tracked for Close
// (the caller untracks it).
func (p *Proxy) dial(d *dest, pick lb.Result) (up, raw net.Conn, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	var dialer net.Dialer
	raw, err = dialer.DialContext(ctx, "tcp", pick.Addr)
	if err != nil {
		p.report(d, pick.Addr, ctx, err)
		return nil, nil, fmt.Errorf("tcpproxy: connect %s: %w", pick.Addr, err)
	}
	// Tracked before the handshake so that Close cuts a slow one short.
	if !p.track(raw) {
		_ = raw.Close()
		return nil, nil, errClosing
	}
	up = raw
	if cfg := d.socket(pick.Endpoint); cfg != nil {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			p.untrack(raw)
			_ = raw.Close()
			// A failed handshake is a connect failure (flag UF), as Envoy
			// counts it.
			p.report(d, pick.Addr, ctx, err)
			return nil, nil, fmt.Errorf("tcpproxy: tls handshake with %s: %w", pick.Addr, err)
		}
		up = tc
	}
	p.report(d, pick.Addr, ctx, nil)
	return up, raw, nil
}

// report feeds d's outlier detection with a connect attempt's outcome.
func (p *Proxy) report(d *dest, addr string, ctx context.Context, err error) {
	if d.state == nil {
		return
	}
	o := ups.Outcome{Local: ups.LocalSuccessFinal}
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		o.Local = ups.LocalTimeout
	default:
		o.Local = ups.LocalConnectFailure
	}
	d.state.Report(addr, o)
}
