package certserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/ca"
)

// ServerName is the name proxies expect on trellisd's serving certificate
// (Istio's istiod name, which is also among its SANs).
const ServerName = "istiod.istio-system.svc"

// handshakeTimeout bounds a TLS handshake on the secure listener.
const handshakeTimeout = 10 * time.Second

// Funnel is a net.Listener fed with connections accepted elsewhere (by
// Split, or by Feed from another listener). Close makes Accept return
// net.ErrClosed and closes connections pushed afterwards. Safe for
// concurrent use.
type Funnel struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*Funnel)(nil)

// NewFunnel returns a Funnel whose Addr is addr.
func NewFunnel(addr net.Addr) *Funnel {
	return &Funnel{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (f *Funnel) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (f *Funnel) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

// Addr implements net.Listener.
func (f *Funnel) Addr() net.Addr { return f.addr }

// Push hands c to Accept, blocking until it is taken; after Close it closes
// c and returns false.
func (f *Funnel) Push(c net.Conn) bool {
	select {
	case f.conns <- c:
		return true
	case <-f.done:
		c.Close()
		return false
	}
}

// Feed accepts from lis and pushes every connection into f until lis or f
// is closed; it closes lis when f closes. It returns nil when either was
// closed.
func (f *Funnel) Feed(lis net.Listener) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() { // owned by Feed: ends when Feed returns or f closes
		select {
		case <-f.done:
			lis.Close()
		case <-stop:
		}
	}()
	for {
		c, err := lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("certserver: feed: %w", err)
		}
		if !f.Push(c) {
			return nil
		}
	}
}

// Split serves the secure listener: it completes the TLS handshake of every
// connection on lis with cfg and pushes it to authed when the client
// presented a verified certificate, else to anon. It returns when ctx is
// done (closing lis) or lis fails, after every handshake in flight ended.
func Split(ctx context.Context, lis net.Listener, cfg *tls.Config, anon, authed *Funnel, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "certserver")
	stop := context.AfterFunc(ctx, func() { lis.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		raw, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("certserver: accept: %w", err)
		}
		wg.Add(1)
		go func() { // owned by Split through wg
			defer wg.Done()
			c := tls.Server(raw, cfg)
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			err := c.HandshakeContext(hctx)
			cancel()
			if err != nil {
				log.Debug("TLS handshake failed", "peer", raw.RemoteAddr().String(), "error", err)
				raw.Close()
				return
			}
			if len(c.ConnectionState().PeerCertificates) > 0 {
				authed.Push(c)
			} else {
				anon.Push(c)
			}
		}()
	}
}

// ServingConfig is the TLS config of the secure listener: a serving
// certificate issued by c for ServerName, "trellisd" and the given IPs,
// re-issued once past half its life; client certificates optional but, when
// sent, verified against c's trust bundle and required to carry an Istio
// SPIFFE ID in c's trust domain.
func ServingConfig(c *ca.CA, ips []net.IP, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.Default()
	}
	sc := &servingCert{ca: c, ips: ips}
	if _, err := sc.get(); err != nil {
		return nil, err
	}
	td := c.TrustDomain().Name()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := sc.get()
			if err != nil {
				log.Error("serving certificate", "component", "certserver", "error", err)
			}
			return cert, err
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  c.Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			id, err := ca.IdentityOf(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if id.TrustDomain != td {
				return fmt.Errorf("client identity %s is not in trust domain %s", id, td)
			}
			return nil
		},
	}, nil
}

// servingCert re-issues trellisd's own certificate when past half its life.
type servingCert struct {
	ca  *ca.CA
	ips []net.IP
	mu  sync.Mutex
	cur atomic.Pointer[tls.Certificate]
}

func (s *servingCert) get() (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil && !pastHalf(c.Leaf) {
		return c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cur.Load(); c != nil && !pastHalf(c.Leaf) {
		return c, nil
	}
	c, err := s.ca.ServingCertificate([]string{ServerName, "trellisd"}, s.ips, 0)
	if err != nil {
		if old := s.cur.Load(); old != nil && time.Now().Before(old.Leaf.NotAfter) {
			return old, nil // keep serving the old one while it is valid
		}
		return nil, err
	}
	s.cur.Store(c)
	return c, nil
}

func pastHalf(c *x509.Certificate) bool {
	return time.Now().After(c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2))
}
