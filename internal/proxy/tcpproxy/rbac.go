package tcpproxy

import (
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// AdmitRBAC is an Options.Admit that enforces the chain's
// envoy.filters.network.rbac filters (issue 4: a denied TCP connection is
// closed). They run in chain order, as Envoy's filter chain does, and the
// first that denies stops the rest: Istio's DENY filter precedes its ALLOW
// filter. It reads the connection's addresses and, for a *tls.Conn, the SNI
// and the verified peer certificate.
func AdmitRBAC(down net.Conn, t *runtime.TCPListener) bool {
	if t == nil || len(t.RBAC) == 0 {
		return true
	}
	req := ConnRequest(down)
	for _, r := range t.RBAC {
		if !allowConn(r, req) {
			return false
		}
	}
	return true
}

// ConnRequest describes a connection to the RBAC engine.
func ConnRequest(c net.Conn) *authz.Request {
	req := &authz.Request{}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		req.DirectRemoteIP = ap.Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		req.DestinationIP, req.DestinationPort = ap.Addr().Unmap(), ap.Port()
	}
	if tc, ok := c.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		req.SNI = cs.ServerName
		if len(cs.PeerCertificates) > 0 {
			req.Peer = authz.NewPeer(cs.PeerCertificates[0])
		}
	}
	return req
}

func allowConn(cfg *runtime.RBACFilter, req *authz.Request) bool {
	if cfg.Shadow != nil {
		_ = cfg.Shadow.Evaluate(req) // no dynamic metadata consumer on TCP
	}
	return cfg.Rules == nil || cfg.Rules.Evaluate(req).Allowed
}
