//go:build linux

package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// heldServer serves h on the waitConn end of a loopback pair (wrapped in
// TLS when cfg is set) and returns the other end for the test to speak
// on. The server's goroutine ends when the test closes its end.
func heldServer(t *testing.T, opts ServerOptions, cfg *tls.Config, h http.Handler) (net.Conn, *bufio.Reader) {
	t.Helper()
	w, peer := waitTestPair(t, 0)
	var sc net.Conn = w
	if cfg != nil {
		sc = tls.Server(w, cfg)
	}
	srv := NewServer(opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeConn(context.Background(), sc, h)
	}()
	t.Cleanup(func() { _ = peer.Close(); <-done })
	return peer, bufio.NewReader(peer)
}

func readOK(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, want)
	}
}

var echoPath = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })

// TestServerHeldResponseLostEdge: a client sends its next request after
// the server read the previous one but before the response went out, so
// no readiness is reported for it once the held response is sent; the
// bounded wait still serves it, and later requests too.
func TestServerHeldResponseLostEdge(t *testing.T) {
	sent := make(chan struct{})
	started := make(chan struct{})
	c, br := heldServer(t, ServerOptions{WatchAfter: time.Hour}, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			close(started)
			<-sent // /b is in the socket before /a's response leaves
		}
		io.WriteString(w, r.URL.Path)
	}))
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	io.WriteString(c, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	close(sent)
	readOK(t, br, "/a")
	readOK(t, br, "/b")
	for _, p := range []string{"/c", "/d"} {
		io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: h\r\n\r\n")
		readOK(t, br, p)
	}
}

// TestServerHeldResponses: keep-alive exchanges, pipelined ones, a body,
// and a closing one, in plain text and under TLS.
func TestServerHeldResponses(t *testing.T) {
	cert := waitTestCert(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{{"plain", nil}, {"tls", &tls.Config{Certificates: []tls.Certificate{cert}}}} {
		t.Run(tc.name, func(t *testing.T) {
			peer, _ := heldServer(t, ServerOptions{}, tc.cfg, echoPath)
			var c net.Conn = peer
			if tc.cfg != nil {
				c = tls.Client(peer, &tls.Config{RootCAs: roots, ServerName: "wait.test"})
			}
			br := bufio.NewReader(c)
			for _, p := range []string{"/1", "/2", "/3"} {
				io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: h\r\n\r\n")
				readOK(t, br, p)
			}
			io.WriteString(c, "POST /4 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /5 HTTP/1.1\r\nHost: h\r\n\r\n")
			readOK(t, br, "/4")
			readOK(t, br, "/5")
			io.WriteString(c, "GET /6 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			readOK(t, br, "/6")
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after Connection: close: %v, want EOF", err)
			}
		})
	}
}

// TestWaitConnFlush: held bytes go out on flush (the server's close path).
func TestWaitConnFlush(t *testing.T) {
	w, peer := waitTestPair(t, 0)
	w.Hold()
	io.WriteString(w, "held")
	if !w.holding() {
		t.Fatal("not holding after a held write")
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if w.holding() {
		t.Fatal("still holding after flush")
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "held" {
		t.Fatalf("peer read %q, %v", b, err)
	}
}
