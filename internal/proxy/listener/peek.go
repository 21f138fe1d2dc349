package listener

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// defaultPeekTimeout is Envoy's listener_filters_timeout default.
const defaultPeekTimeout = 15 * time.Second

// maxHTTPPeek bounds how far the HTTP inspector reads looking for the end
// of a request line.
const maxHTTPPeek = 4096

// h2Preface starts every HTTP/2 prior-knowledge connection (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// connInfo is what filter-chain matching knows about a connection.
type connInfo struct {
	dst       netip.AddrPort
	src       netip.Addr
	transport string // runtime.TransportTLS or runtime.TransportRaw
	sni       string
	alpn      []string // TLS ALPN offered, or the detected "http/1.1"/"h2c"
}

// peekedConn replays the bytes the inspectors read before reading from the
// connection itself: peeking never consumes.
type peekedConn struct {
	net.Conn
	head []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		if len(c.head) == 0 {
			c.head = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes when the underlying connection can (tcp_proxy
// relies on it to pass an end of stream through).
// NetConn returns the connection underneath once the peeked bytes have
// all been read (nil before): the HTTP/1.1 server then holds responses on
// it (http1.NewWaitConn), which replaying bytes would get out of order.
func (c *peekedConn) NetConn() net.Conn {
	if len(c.head) > 0 {
		return nil
	}
	return c.Conn
}

func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// fill reads until head holds at least n bytes.
func (c *peekedConn) fill(n int) error {
	for len(c.head) < n {
		if cap(c.head) < n {
			grown := make([]byte, len(c.head), n)
			copy(grown, c.head)
			c.head = grown
		}
		m, err := c.Conn.Read(c.head[len(c.head):n])
		c.head = c.head[:len(c.head)+m]
		if err != nil {
			return err
		}
	}
	return nil
}

// more reads once, whatever is available, keeping head under limit bytes.
func (c *peekedConn) more(limit int) error {
	if cap(c.head) < limit {
		grown := make([]byte, len(c.head), limit)
		copy(grown, c.head)
		c.head = grown
	}
	m, err := c.Conn.Read(c.head[len(c.head):limit])
	c.head = c.head[:len(c.head)+m]
	return err
}

// errPeekTimeout says the inspectors ran out of time.
var errPeekTimeout = errors.New("listener: peek: timed out")

// inspect runs the listener filters of f on c. The returned connection
// replays what was read. On errPeekTimeout info holds what was learnt.
func inspect(c net.Conn, f runtime.ListenerFilters) (*peekedConn, connInfo, error) {
	pc := &peekedConn{Conn: c}
	info := connInfo{transport: runtime.TransportRaw}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		info.dst = a.AddrPort()
		info.dst = netip.AddrPortFrom(info.dst.Addr().Unmap(), info.dst.Port())
	}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		info.src = a.AddrPort().Addr().Unmap()
	}
	if !f.TLSInspector && !f.HTTPInspector {
		return pc, info, nil
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = defaultPeekTimeout
	}
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	err := peek(pc, f, &info)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errPeekTimeout
	}
	return pc, info, err
}

func peek(pc *peekedConn, f runtime.ListenerFilters, info *connInfo) error {
	if err := pc.fill(1); err != nil {
		return fmt.Errorf("listener: peek: %w", err)
	}
	if f.TLSInspector && pc.head[0] == recordTypeHandshake {
		for {
			h, need, err := parseClientHello(pc.head)
			switch {
			case err == nil:
				info.transport, info.sni, info.alpn = runtime.TransportTLS, h.serverName, h.alpn
				return nil
			case errors.Is(err, errShort):
				if err := pc.fill(need); err != nil {
					return fmt.Errorf("listener: peek: %w", err)
				}
				continue
			}
			break // not a ClientHello: raw bytes
		}
	}
	if !f.HTTPInspector {
		return nil
	}
	// HTTP inspector: the HTTP/2 preface, or an HTTP/1.x request line.
	for {
		if p := detectHTTP(pc.head); p != "" {
			if p != "-" {
				info.alpn = []string{p}
			}
			return nil
		}
		if len(pc.head) >= maxHTTPPeek {
			return nil
		}
		if err := pc.more(maxHTTPPeek); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			return nil // EOF and the like: decide with what arrived
		}
	}
}

// detectHTTP returns "h2c", "http/1.1" (or "http/1.0"), "-" when b cannot
// be HTTP, or "" when more bytes are needed.
func detectHTTP(b []byte) string {
	n := min(len(b), len(h2Preface))
	if bytes.Equal(b[:n], h2Preface[:n]) {
		if n == len(h2Preface) {
			return "h2c"
		}
		return ""
	}
	line, _, found := bytes.Cut(b, []byte("\r\n"))
	// method SP request-target SP HTTP-version (RFC 9112 §3)
	for i, c := range line {
		if c == ' ' {
			if i == 0 {
				return "-"
			}
			break
		}
		if !isTokenChar(c) {
			return "-"
		}
	}
	if !found {
		return ""
	}
	sp := bytes.LastIndexByte(line, ' ')
	if sp <= 0 {
		return "-"
	}
	switch string(line[sp+1:]) {
	case "HTTP/1.1":
		return "http/1.1"
	case "HTTP/1.0":
		return "http/1.0"
	}
	return "-"
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !bytes.ContainsRune([]byte(`"(),/:;<=>?@[\]{}`), rune(c))
}
