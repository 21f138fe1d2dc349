//go:build linux

package http1

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// waitSafety bounds every read of these tests: a read that waits for an
// edge that never comes fails the test instead of hanging it.
const waitSafety = 10 * time.Second

// waitTestPair returns a loopback TCP connection: the client end wrapped
// by NewWaitConn, and the server end. sendBuf > 0 shrinks the client's
// send buffer, so that its writes meet a full socket. (Shrinking the
// receiver's buffer too would stall loopback TCP on zero windows.)
func waitTestPair(t *testing.T, sendBuf int) (*waitConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	srv := a.c.(*net.TCPConn)
	if sendBuf > 0 {
		_ = nc.(*net.TCPConn).SetWriteBuffer(sendBuf)
	}
	w, ok := NewWaitConn(nc).(*waitConn)
	if !ok {
		t.Fatal("NewWaitConn did not wrap a *net.TCPConn")
	}
	t.Cleanup(func() { _ = w.Close(); _ = srv.Close() })
	_ = w.SetDeadline(time.Now().Add(waitSafety))
	_ = srv.SetDeadline(time.Now().Add(waitSafety))
	return w, srv
}

// waitTestTLS layers TLS over the pair: it returns the client's and the
// server's *tls.Conn, handshaken. split makes the server write every TLS
// record in two halves, so that records arrive split across reads.
func waitTestTLS(t *testing.T, w *waitConn, srv net.Conn, split bool) (*tls.Conn, *tls.Conn) {
	t.Helper()
	cert := waitTestCert(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	var sconn net.Conn = srv
	if split {
		sconn = splitWriter{srv}
	}
	s := tls.Server(sconn, &tls.Config{Certificates: []tls.Certificate{cert}})
	c := tls.Client(w, &tls.Config{RootCAs: roots, ServerName: "wait.test"})
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c, s
}

// splitWriter writes each buffer in two writes.
type splitWriter struct{ net.Conn }

func (s splitWriter) Write(p []byte) (int, error) {
	if len(p) < 2 {
		return s.Conn.Write(p)
	}
	n, err := s.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	m, err := s.Conn.Write(p[len(p)/2:])
	return n + m, err
}

func waitTestCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wait.test"}, DNSNames: []string{"wait.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func waitPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// TestWaitConnExchange runs request/answer exchanges over a held
// connection, in plain text and under TLS: answers in one write or split
// across packets (the test reads each part before the server sends the
// next), large answers, requests over the hold bound, and several
// exchanges on one connection.
func TestWaitConnExchange(t *testing.T) {
	cases := []struct {
		name  string
		req   int   // request bytes
		parts []int // answer parts, each sent once the previous one was read
	}{
		{"small", 300, []int{200}},
		{"split answer", 1200, []int{10, 1, 4000, 17}},
		{"large answer", 1024, []int{1 << 20}},
		{"request over the hold bound", waitMaxHeld + 5000, []int{100}},
		{"request at the hold bound", waitMaxHeld, []int{100, 100}},
	}
	for _, mode := range []string{"plain", "tls", "tls split records"} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				w, srv := waitTestPair(t, 0)
				var client, server net.Conn = w, srv
				if mode != "plain" {
					client, server = waitTestTLS(t, w, srv, mode == "tls split records")
				}
				next := make(chan struct{})
				done := make(chan error, 1)
				const rounds = 3
				go func() {
					done <- func() error {
						for r := range rounds {
							got := make([]byte, tc.req)
							if _, err := io.ReadFull(server, got); err != nil {
								return err
							}
							if !bytes.Equal(got, waitPattern(tc.req, byte(r))) {
								return errors.New("request corrupted")
							}
							for i, n := range tc.parts {
								if i > 0 {
									<-next
								}
								if _, err := server.Write(waitPattern(n, byte(r+i))); err != nil {
									return err
								}
							}
						}
						return nil
					}()
				}()
				for r := range rounds {
					w.Hold()
					if _, err := client.Write(waitPattern(tc.req, byte(r))); err != nil {
						t.Fatal(err)
					}
					for i, n := range tc.parts {
						if i > 0 {
							next <- struct{}{}
						}
						got := make([]byte, n)
						if _, err := io.ReadFull(client, got); err != nil {
							t.Fatalf("round %d part %d: %v", r, i, err)
						}
						if !bytes.Equal(got, waitPattern(n, byte(r+i))) {
							t.Fatalf("round %d part %d: answer corrupted", r, i)
						}
					}
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if w.held != nil {
					t.Error("held buffer kept after the exchange")
				}
			})
		}
	}
}

// TestWaitConnFullSocket holds more than the socket takes at once: the
// rest goes out through the poller before the read.
func TestWaitConnFullSocket(t *testing.T) {
	w, srv := waitTestPair(t, 4096)
	req := waitPattern(waitMaxHeld, 7)
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			got := make([]byte, len(req))
			if _, err := io.ReadFull(srv, got); err != nil {
				return err
			}
			if !bytes.Equal(got, req) {
				return errors.New("request corrupted")
			}
			_, err := srv.Write([]byte("ok"))
			return err
		}()
	}()
	w.Hold()
	if _, err := w.Write(req); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(w, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("ok", string(got)); diff != "" {
		t.Error(diff)
	}
}

// TestWaitConnPeerSpokeFirst: what the peer did before the request (sent
// bytes, closed) arrived before the held read began, so its edge is lost;
// the read must still end, woken by what the request causes (the answer,
// or the reset of a closed socket).
func TestWaitConnPeerSpokeFirst(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		w, srv := waitTestPair(t, 0)
		_ = srv.Close()
		// Wait until the FIN is in: a peek sees EOF without consuming.
		if err := waitTestUntil(func() bool { return !peekAlive(w) }); err != nil {
			t.Fatal(err)
		}
		w.Hold()
		if _, err := w.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_, err := w.Read(make([]byte, 10))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("read after the peer closed: %v, want EOF or a reset", err)
		}
	})
	t.Run("sent unasked", func(t *testing.T) {
		w, srv := waitTestPair(t, 0)
		if _, err := srv.Write([]byte("early;")); err != nil {
			t.Fatal(err)
		}
		if err := waitTestUntil(func() bool { return !peekAlive(w) }); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(srv, make([]byte, 3))
			if err == nil {
				_, err = srv.Write([]byte("answer"))
			}
			done <- err
		}()
		w.Hold()
		if _, err := w.Write([]byte("req")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len("early;answer"))
		if _, err := io.ReadFull(w, got); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("early;answer", string(got)); diff != "" {
			t.Error(diff)
		}
	})
}

// waitTestUntil polls cond until it holds, for at most waitSafety.
func waitTestUntil(cond func() bool) error {
	deadline := time.Now().Add(waitSafety)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// TestWaitConnInterrupt: a deadline set while the held read waits (the
// client's cancellation) ends it with a timeout, after the request went
// out; a deadline already past sends nothing.
func TestWaitConnInterrupt(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		w, srv := waitTestPair(t, 0)
		got := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(srv, make([]byte, 3))
			got <- err
			if err == nil {
				_ = w.SetReadDeadline(aLongTimeAgo)
			}
		}()
		w.Hold()
		if _, err := w.Write([]byte("req")); err != nil {
			t.Fatal(err)
		}
		_, err := w.Read(make([]byte, 10))
		if rerr := <-got; rerr != nil {
			t.Fatalf("request not received: %v", rerr)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read: %v, want a timeout", err)
		}
	})
	t.Run("before", func(t *testing.T) {
		w, srv := waitTestPair(t, 0)
		_ = w.SetReadDeadline(aLongTimeAgo)
		w.Hold()
		if _, err := w.Write([]byte("req")); err != nil {
			t.Fatal(err)
		}
		_, err := w.Read(make([]byte, 10))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" || !oe.Timeout() {
			t.Fatalf("read: %v, want a write timeout", err)
		}
		_ = w.Close()
		if n, _ := io.Copy(io.Discard, srv); n != 0 {
			t.Errorf("%d bytes sent after a past deadline", n)
		}
	})
}

// TestClientWaitConnTLS runs the Client over TLS connections dialled as
// the proxy dials them (tls.Client(NewWaitConn(raw))): held requests of
// every size class, answers of every size, one connection throughout.
func TestClientWaitConnTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("X-Got", strconv.Itoa(len(body)))
		for i := 0; i < n; i += 1000 {
			_, _ = w.Write(waitPattern(min(1000, n-i), byte(i)))
			w.(http.Flusher).Flush() // one TLS record per part
		}
	}))
	cnt := &clientConns{}
	srv.Config.ConnState = cnt.hook
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = "example.com" // httptest's certificate
	var d net.Dialer
	c := NewClient(ClientOptions{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(NewWaitConn(raw), cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}})
	defer c.Close()
	for _, tc := range []struct {
		method  string
		body, n int
	}{
		{http.MethodGet, 0, 10},
		{http.MethodPost, 1024, 1024},
		{http.MethodPost, 40 << 10, 100},   // over waitMaxHeld: sent at once
		{http.MethodPost, 100 << 10, 5000}, // over clientSyncBody: not held
		{http.MethodGet, 0, 300 << 10},
	} {
		var body io.Reader
		if tc.body > 0 {
			body = bytes.NewReader(waitPattern(tc.body, 3))
		}
		req, err := http.NewRequest(tc.method, srv.URL+"/?n="+strconv.Itoa(tc.n), body)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitSafety)
		resp, err := c.RoundTrip(req.WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatalf("%s %d: %v", tc.method, tc.body, err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i := 0; i < tc.n; i += 1000 {
			want = append(want, waitPattern(min(1000, tc.n-i), byte(i))...)
		}
		if !bytes.Equal(got, want) || resp.Header.Get("X-Got") != strconv.Itoa(tc.body) {
			t.Errorf("%s body %d, answer %d: got %d bytes, X-Got %s", tc.method, tc.body, tc.n, len(got), resp.Header.Get("X-Got"))
		}
	}
	if opened, _ := cnt.counts(); opened != 1 {
		t.Errorf("opened %d connections, want 1 (kept alive)", opened)
	}
}

// TestNewWaitConnOther: connections other than TCP are returned as they
// are.
func TestNewWaitConnOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := NewWaitConn(a); got != a {
		t.Errorf("NewWaitConn(pipe) = %T, want the pipe", got)
	}
	if waitConnOf(a) != nil {
		t.Error("waitConnOf(pipe) != nil")
	}
}

// TestWaitConnDuplex: unheld, a reader and a writer run at once (an
// upgraded connection), with reads and writes large enough to wait for
// the socket, and io.Copy through ReadFrom and WriteTo.
func TestWaitConnDuplex(t *testing.T) {
	w, srv := waitTestPair(t, 4096)
	const size = 4 << 20
	out := waitPattern(size, 1)
	in := waitPattern(size, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(3)
	go func() { // client → server, through waitConn.ReadFrom
		defer wg.Done()
		_, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(out)})
		if err == nil {
			err = w.CloseWrite()
		}
		errs <- err
	}()
	go func() { // server echoes its own stream back, then half-closes
		defer wg.Done()
		_, err := srv.Write(in)
		if err == nil {
			err = srv.CloseWrite()
		}
		errs <- err
	}()
	var fromServer bytes.Buffer
	go func() { // client reads everything through waitConn.WriteTo
		defer wg.Done()
		_, err := io.Copy(&fromServer, w)
		errs <- err
	}()
	got, err := io.ReadAll(srv)
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			t.Fatal(e)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, out) || !bytes.Equal(fromServer.Bytes(), in) {
		t.Errorf("streams corrupted: %d/%d and %d/%d bytes", len(got), size, fromServer.Len(), size)
	}
}
