package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// countingConn counts the writes to a connection (syscalls, as the
// server writes through one bufio.Writer).
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// NetConn lets the server find the waitConn underneath, as it finds the
// one under a *tls.Conn: every server test runs with held responses.
func (c *countingConn) NetConn() net.Conn { return c.Conn }

// testServer serves h on a loopback port with srv; the accept loop and
// every ServeConn are owned by the test and waited for at cleanup.
type testServer struct {
	srv   *Server
	addr  string
	mu    sync.Mutex
	conns []*countingConn
}

func startServer(t testing.TB, opts ServerOptions, h http.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: NewServer(opts), addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cc := &countingConn{Conn: NewWaitConn(c)}
			ts.mu.Lock()
			ts.conns = append(ts.conns, cc)
			ts.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = ts.srv.ServeConn(context.Background(), cc, h)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = ts.srv.Close()
		wg.Wait()
	})
	return ts
}

func (ts *testServer) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// exchange writes raw and reads one response to method.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, raw, method string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// wire is what a test checks of a response.
type wire struct {
	Status           int
	Body             string
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Header           map[string]string
	Trailer          map[string]string
}

func wireOf(resp *http.Response, body string, keys ...string) wire {
	w := wire{Status: resp.StatusCode, Body: body, ContentLength: resp.ContentLength,
		TransferEncoding: resp.TransferEncoding, Close: resp.Close}
	for _, k := range keys {
		if v := resp.Header.Get(k); v != "" {
			if w.Header == nil {
				w.Header = map[string]string{}
			}
			w.Header[k] = v
		}
	}
	for k := range resp.Trailer {
		if w.Trailer == nil {
			w.Trailer = map[string]string{}
		}
		w.Trailer[k] = resp.Trailer.Get(k)
	}
	return w
}

func TestServerFraming(t *testing.T) {
	big := strings.Repeat("x", serverPendingSize+1)
	tests := []struct {
		name    string
		raw     string
		method  string
		handler http.HandlerFunc
		keys    []string
		want    wire
	}{
		{
			name: "short body gets a Content-Length",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "hello")
			},
			keys: []string{"Content-Type"},
			want: wire{Status: 200, Body: "hello", ContentLength: 5, Header: map[string]string{"Content-Type": "text/plain"}},
		},
		{
			name: "body past the buffer is chunked",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, big)
			},
			want: wire{Status: 200, Body: big, ContentLength: -1, TransferEncoding: []string{"chunked"}},
		},
		{
			name: "flushed body without length is chunked",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
				io.WriteString(w, "b")
			},
			want: wire{Status: 200, Body: "ab", ContentLength: -1, TransferEncoding: []string{"chunked"}},
		},
		{
			name: "handler Content-Length is kept",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "3")
				w.(http.Flusher).Flush()
				io.WriteString(w, "abc")
			},
			want: wire{Status: 200, Body: "abc", ContentLength: 3},
		},
		{
			name:   "HEAD without a written length",
			raw:    "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "HEAD",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X", "y")
			},
			keys: []string{"X"},
			want: wire{Status: 200, ContentLength: -1, Header: map[string]string{"X": "y"}},
		},
		{
			name:   "HEAD with the GET's length",
			raw:    "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "HEAD",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
			},
			want: wire{Status: 200, ContentLength: 10},
		},
		{
			name: "204 has no body or length",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				w.WriteHeader(http.StatusNoContent)
			},
			want: wire{Status: 204},
		},
		{
			name: "304 drops Content-Type",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Etag", `"1"`)
				w.WriteHeader(http.StatusNotModified)
			},
			keys: []string{"Content-Type", "Etag"},
			want: wire{Status: 304, Header: map[string]string{"Etag": `"1"`}},
		},
		{
			name: "HTTP/1.0 closes after the response",
			raw:  "GET / HTTP/1.0\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ten")
			},
			want: wire{Status: 200, Body: "ten", ContentLength: 3, Close: true},
		},
		{
			name: "HTTP/1.0 keep-alive with a length",
			raw:  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ten")
			},
			keys: []string{"Connection"},
			want: wire{Status: 200, Body: "ten", ContentLength: 3, Header: map[string]string{"Connection": "keep-alive"}},
		},
		{
			name: "Connection: close is honoured",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "bye")
			},
			want: wire{Status: 200, Body: "bye", ContentLength: 3, Close: true},
		},
		{
			name: "declared trailers",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "Grpc-Status")
				io.WriteString(w, "x")
				w.Header().Set("Grpc-Status", "0")
			},
			want: wire{Status: 200, Body: "x", ContentLength: -1, TransferEncoding: []string{"chunked"},
				Trailer: map[string]string{"Grpc-Status": "0"}},
		},
		{
			name: "TrailerPrefix trailers",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.(http.Flusher).Flush()
				w.Header().Set(http.TrailerPrefix+"X-T", "v")
			},
			want: wire{Status: 200, ContentLength: -1, TransferEncoding: []string{"chunked"},
				Trailer: map[string]string{"X-T": "v"}},
		},
		{
			name: "request trailers reach the handler",
			raw:  "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				io.WriteString(w, string(b)+" "+r.Trailer.Get("X-Sum"))
			},
			want: wire{Status: 200, Body: "abc 9", ContentLength: 5},
		},
		{
			name: "Date is set",
			raw:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", "then")
			},
			keys: []string{"Date"},
			want: wire{Status: 200, ContentLength: 0, Header: map[string]string{"Date": "then"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, ServerOptions{}, tc.handler)
			c, br := ts.dial(t)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp, body := exchange(t, c, br, tc.raw, method)
			if diff := cmp.Diff(tc.want, wireOf(resp, body, tc.keys...)); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerOneWritePerResponse: a small complete response, header and
// body, leaves in one write; keep-alive serves the next on the same
// connection.
func TestServerOneWritePerResponse(t *testing.T) {
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", "4")
		w.Write(b[:2])
		w.(http.Flusher).Flush()
		w.Write(b[2:])
	}))
	c, br := ts.dial(t)
	// The flush after the first part (as ReverseProxy does for every
	// part) writes; the rest goes with the end.
	for i := range 3 {
		resp, body := exchange(t, c, br, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd", "POST")
		if resp.StatusCode != 200 || body != "abcd" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	ts.mu.Lock()
	writes := ts.conns[0].writes.Load()
	ts.mu.Unlock()
	if writes != 6 {
		t.Errorf("%d writes for 3 responses flushed once each mid-body, want 6", writes)
	}

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		// ReverseProxy with FlushInterval -1 and an upstream length.
		{"length, write, flush", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
			w.(http.Flusher).Flush()
		}},
		{"no length, no flush", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("hello"))
		}},
		{"local reply", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, ServerOptions{}, tc.handler)
			c, br := ts.dial(t)
			for range 3 {
				exchange(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
			}
			ts.mu.Lock()
			writes := ts.conns[0].writes.Load()
			ts.mu.Unlock()
			if writes != 3 {
				t.Errorf("%d writes for 3 small responses, want 3", writes)
			}
		})
	}
}

func TestServerBadRequests(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"garbage", "hello\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"header over 60 KiB", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 61<<10) + "\r\n\r\n", 431},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
		{"invalid header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
			c, br := ts.dial(t)
			resp, _ := exchange(t, c, br, tc.raw, "GET")
			if resp.StatusCode != tc.want || !resp.Close {
				t.Errorf("status %d close %v, want %d and close", resp.StatusCode, resp.Close, tc.want)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after a bad request: %v, want EOF", err)
			}
			if called {
				t.Error("the handler ran")
			}
		})
	}
}

// TestServerUnreadBody: a body the handler ignores is discarded (small)
// or the connection closed after the response (too big to discard).
func TestServerUnreadBody(t *testing.T) {
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	c, br := ts.dial(t)
	resp, body := exchange(t, c, br, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n12345", "POST")
	if resp.Close || body != "/a" {
		t.Fatalf("small unread body: close %v body %q", resp.Close, body)
	}
	resp, body = exchange(t, c, br, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	if body != "/b" {
		t.Fatalf("next request: %q", body)
	}
	resp, _ = exchange(t, c, br, "POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n", "POST")
	if !resp.Close {
		t.Errorf("a 10 MB unread body kept the connection")
	}
}

func TestServerExpectContinue(t *testing.T) {
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	c, br := ts.dial(t)
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("100 Continue ends with %q", l)
	}
	resp, body := exchange(t, c, br, "abc", "PUT")
	if resp.StatusCode != 200 || body != "abc" || resp.Close {
		t.Errorf("%d %q close %v", resp.StatusCode, body, resp.Close)
	}
}

func TestServerHijack(t *testing.T) {
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	c, br := ts.dial(t)
	// The first frame comes with the request: it must not be lost.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nping\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo ping\n" {
		t.Errorf("after the upgrade: %q", line)
	}
}

// TestServerContextCancelledWhenClientLeaves: a handler waiting on
// something slow sees its context end when the client closes.
func TestServerContextCancelledWhenClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"body read by the handler", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, done := make(chan struct{}), make(chan error, 1)
			ts := startServer(t, ServerOptions{WatchAfter: time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					done <- r.Context().Err()
				case <-time.After(10 * time.Second):
					done <- errors.New("context never ended")
				}
			}))
			c, _ := ts.dial(t)
			io.WriteString(c, tc.raw)
			<-started
			c.Close()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("context: %v, want canceled", err)
			}
		})
	}
}

// TestServerSlowRequestKeepsPipelined: the watcher of a slow request
// reads the first byte of the next one; it is not lost.
func TestServerSlowRequestKeepsPipelined(t *testing.T) {
	ts := startServer(t, ServerOptions{WatchAfter: -1}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(50 * time.Millisecond): // lets the watcher read
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, br := ts.dial(t)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(10 * time.Millisecond) // not synchronisation: only makes the second request arrive mid-handler
	resp, body := exchange(t, c, br, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	if body != "/slow" || resp.StatusCode != 200 {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "/next" {
		t.Errorf("pipelined request answered %q, want /next", b)
	}
}

func TestServerShutdown(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	idle, idleBR := ts.dial(t)
	exchange(t, idle, idleBR, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	busy, busyBR := ts.dial(t)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-arrived
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	close(release)
	resp, err := http.ReadResponse(busyBR, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Errorf("in-flight body %q", b)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := busyBR.ReadByte(); err != io.EOF {
		t.Errorf("after its response: %v, want EOF", err)
	}
}

func TestServerPanicClosesConnection(t *testing.T) {
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	c, br := ts.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("body of an aborted response ended cleanly")
	}
}

func TestServerRequestFields(t *testing.T) {
	type seen struct {
		Host, RemoteSet, LocalAddr, Method, URI string
		ServerKey                               bool
	}
	got := make(chan seen, 1)
	ts := startServer(t, ServerOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		s := seen{Host: r.Host, Method: r.Method, URI: r.RequestURI,
			ServerKey: r.Context().Value(http.ServerContextKey) != nil}
		if r.RemoteAddr != "" {
			s.RemoteSet = "yes"
		}
		if la != nil {
			s.LocalAddr = la.String()
		}
		if _, ok := r.Header["Host"]; ok {
			s.Host += " (still in Header)"
		}
		got <- s
	}))
	c, br := ts.dial(t)
	exchange(t, c, br, "OPTIONS /p?q=1 HTTP/1.1\r\nHost: svc\r\n\r\n", "OPTIONS")
	want := seen{Host: "svc", RemoteSet: "yes", LocalAddr: ts.addr, Method: "OPTIONS", URI: "/p?q=1", ServerKey: true}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}
