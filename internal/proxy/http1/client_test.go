package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clientConns records a test server's connections.
type clientConns struct {
	mu     sync.Mutex
	opened int
	open   map[net.Conn]bool
}

func (c *clientConns) hook(nc net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[net.Conn]bool{}
	}
	switch s {
	case http.StateNew:
		c.opened++
		c.open[nc] = true
	case http.StateClosed, http.StateHijacked:
		delete(c.open, nc)
	}
}

func (c *clientConns) counts() (opened, open int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened, len(c.open)
}

// clientTestServer serves h on loopback and counts its connections.
func clientTestServer(t *testing.T, h http.Handler) (*httptest.Server, *clientConns) {
	t.Helper()
	cnt := &clientConns{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cnt.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cnt
}

func newTestClient(t *testing.T, opts ClientOptions) *Client {
	t.Helper()
	c := NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// do sends one request and reads the whole response.
func clientDo(t *testing.T, c *Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip %s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

func clientReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// clientWaitFor polls cond until it holds or a bounded deadline passes.
func clientWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientEcho answers with the request's framing and body.
var clientEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
	w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
	w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
	w.Header().Set("X-Conn", r.Header.Get("Connection"))
	_, _ = w.Write(b)
})

func TestClientFraming(t *testing.T) {
	srv, cnt := clientTestServer(t, clientEcho)
	c := newTestClient(t, ClientOptions{})
	big := bytes.Repeat([]byte("x"), clientSyncBody+1)
	type result struct {
		Method, Length, TE, Trailer, Body string
	}
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want result
	}{
		{"get", func() *http.Request { return clientReq(t, "GET", srv.URL+"/a?b=c", nil) },
			result{"GET", "0", "", "", ""}},
		{"post empty", func() *http.Request { return clientReq(t, "POST", srv.URL, nil) },
			result{"POST", "0", "", "", ""}},
		{"content-length", func() *http.Request { return clientReq(t, "PUT", srv.URL, strings.NewReader("hello")) },
			result{"PUT", "5", "", "", "hello"}},
		{"large content-length", func() *http.Request { return clientReq(t, "POST", srv.URL, bytes.NewReader(big)) },
			result{"POST", strconv.FormatInt(int64(len(big)), 10), "", "", string(big)}},
		{"chunked", func() *http.Request {
			r := clientReq(t, "POST", srv.URL, io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")))
			r.ContentLength = -1
			return r
		}, result{"POST", "-1", "chunked", "", "abcd"}},
		{"chunked trailer", func() *http.Request {
			r := clientReq(t, "POST", srv.URL, io.NopCloser(strings.NewReader("xyz")))
			r.ContentLength = -1
			r.Trailer = http.Header{"X-Sum": {"42"}}
			return r
		}, result{"POST", "-1", "chunked", "42", "xyz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := clientDo(t, c, tc.req())
			got := result{resp.Header.Get("X-Method"), resp.Header.Get("X-Length"), resp.Header.Get("X-TE"),
				resp.Header.Get("X-Trailer"), body}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if opened, _ := cnt.counts(); opened != 1 {
		t.Errorf("connections opened = %d, want 1 (keep-alive)", opened)
	}
}

func TestClientNoBodyResponses(t *testing.T) {
	srv, cnt := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}
	}))
	c := newTestClient(t, ClientOptions{})
	for _, tc := range []struct{ method, path, body string }{
		{"HEAD", "/", ""}, {"GET", "/204", ""}, {"GET", "/304", ""}, {"GET", "/", "hello"},
	} {
		resp, body := clientDo(t, c, clientReq(t, tc.method, srv.URL+tc.path, nil))
		if body != tc.body {
			t.Errorf("%s %s: body %q, want %q", tc.method, tc.path, body, tc.body)
		}
		if tc.method == "HEAD" && resp.ContentLength != 5 {
			t.Errorf("HEAD: ContentLength %d, want 5", resp.ContentLength)
		}
	}
	if opened, _ := cnt.counts(); opened != 1 {
		t.Errorf("connections opened = %d, want 1", opened)
	}
}

func TestClientConnectionClose(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		srv, cnt := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}))
		c := newTestClient(t, ClientOptions{})
		for range 3 {
			clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
		}
		if opened, _ := cnt.counts(); opened != 3 {
			t.Errorf("connections opened = %d, want 3", opened)
		}
	})
	t.Run("no keep-alive", func(t *testing.T) {
		srv, cnt := clientTestServer(t, clientEcho)
		c := newTestClient(t, ClientOptions{DisableKeepAlives: true})
		for range 3 {
			resp, _ := clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
			if got := resp.Header.Get("X-Conn"); got != "close" {
				t.Errorf("upstream saw Connection %q, want close", got)
			}
		}
		if opened, _ := cnt.counts(); opened != 3 {
			t.Errorf("connections opened = %d, want 3", opened)
		}
		clientWaitFor(t, "connections closed", func() bool { _, open := cnt.counts(); return open == 0 })
	})
}

func TestClientInformational(t *testing.T) {
	srv, _ := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "done")
	}))
	c := newTestClient(t, ClientOptions{})
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		return nil
	}}
	req := clientReq(t, "GET", srv.URL, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, body := clientDo(t, c, req)
	if resp.StatusCode != 200 || body != "done" {
		t.Errorf("final response %d %q, want 200 done", resp.StatusCode, body)
	}
	if diff := cmp.Diff([]int{103}, got); diff != "" {
		t.Errorf("1xx seen (-want +got)\n%s", diff)
	}
	// Without a hook, 1xx are skipped.
	if resp, _ := clientDo(t, c, clientReq(t, "GET", srv.URL, nil)); resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

func TestClientResponseTrailers(t *testing.T) {
	srv, _ := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("Grpc-Status", "0")
	}))
	c := newTestClient(t, ClientOptions{})
	resp, body := clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
	if body != "body" || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("body %q trailer %v, want body and Grpc-Status 0", body, resp.Trailer)
	}
}

func TestClientCancel(t *testing.T) {
	release := make(chan struct{})
	srv, _ := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	c := newTestClient(t, ClientOptions{})

	t.Run("head", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.RoundTrip(clientReq(t, "GET", srv.URL, nil).WithContext(ctx))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
	})
	t.Run("body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := c.RoundTrip(clientReq(t, "GET", srv.URL+"/body", nil).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := resp.Body.Read(buf); err == nil {
			t.Error("read after cancel succeeded")
		}
		_ = resp.Body.Close()
	})
	t.Run("close during read", func(t *testing.T) {
		resp, err := c.RoundTrip(clientReq(t, "GET", srv.URL+"/body", nil))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(resp.Body); done <- err }()
		_ = resp.Body.Close()
		if err := <-done; err == nil {
			t.Error("read across Close ended without error")
		}
	})
}

// clientStaleServer answers each connection's first request with keep-alive,
// then closes it: every reused connection is dead.
func clientStaleServer(t *testing.T) (addr string, accepted func() int, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	closed = make(chan struct{}, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err == nil {
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			_ = nc.Close()
			closed <- struct{}{}
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }, closed
}

func TestClientStaleConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(url string) *http.Request
	}{
		{"get retried", func(url string) *http.Request { return clientReq(t, "GET", url, nil) }},
		{"post probed", func(url string) *http.Request {
			r := clientReq(t, "POST", url, io.NopCloser(strings.NewReader("data")))
			r.GetBody = nil
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, accepted, closed := clientStaleServer(t)
			c := newTestClient(t, ClientOptions{})
			url := "http://" + addr + "/"
			for i := range 3 {
				if _, body := clientDo(t, c, tc.req(url)); body != "ok" {
					t.Fatalf("request %d: body %q", i, body)
				}
				<-closed // the server closed the connection now idle in the pool
			}
			if got := accepted(); got != 3 {
				t.Errorf("connections accepted = %d, want 3", got)
			}
		})
	}
}

func TestClientIdleTimeoutAndClose(t *testing.T) {
	srv, cnt := clientTestServer(t, clientEcho)
	c := NewClient(ClientOptions{IdleTimeout: 30 * time.Millisecond})
	clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
	clientWaitFor(t, "idle connection closed", func() bool { _, open := cnt.counts(); return open == 0 })

	clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
	c2 := NewClient(ClientOptions{})
	clientDo(t, c2, clientReq(t, "GET", srv.URL, nil))
	_ = c2.Close()
	_ = c.Close()
	clientWaitFor(t, "connections closed by Close", func() bool { _, open := cnt.counts(); return open == 0 })
}

func TestClientRetain(t *testing.T) {
	a, cntA := clientTestServer(t, clientEcho)
	b, cntB := clientTestServer(t, clientEcho)
	c := newTestClient(t, ClientOptions{})
	clientDo(t, c, clientReq(t, "GET", a.URL, nil))
	clientDo(t, c, clientReq(t, "GET", b.URL, nil))
	keep := strings.TrimPrefix(a.URL, "http://")
	c.Retain(func(addr string) bool { return addr == keep })
	clientWaitFor(t, "b's connection closed", func() bool { _, open := cntB.counts(); return open == 0 })
	if _, open := cntA.counts(); open != 1 {
		t.Errorf("a's open connections = %d, want 1", open)
	}
}

func TestClientPrune(t *testing.T) {
	a, cntA := clientTestServer(t, clientEcho)
	b, cntB := clientTestServer(t, clientEcho)
	addrA, addrB := strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")
	c := newTestClient(t, ClientOptions{})
	clientDo(t, c, clientReq(t, "GET", a.URL, nil))
	clientDo(t, c, clientReq(t, "GET", b.URL, nil))
	asked := map[string]bool{}
	keepA := func(addr string) bool { asked[addr] = true; return addr == addrA }

	if n := c.Prune(keepA); n != 0 || len(asked) != 0 {
		t.Fatalf("pools with idle connections: pruned %d, asked about %v; want 0 and none", n, asked)
	}
	c.CloseIdleConnections()
	clientWaitFor(t, "idle connections closed", func() bool {
		_, openA := cntA.counts()
		_, openB := cntB.counts()
		return openA == 0 && openB == 0
	})
	if n := c.Prune(keepA); n != 1 || !asked[addrA] || !asked[addrB] {
		t.Fatalf("empty pools: pruned %d, asked about %v; want b's pool pruned, a's kept", n, asked)
	}
	if _, ok := (*c.hosts.Load())[addrA]; !ok {
		t.Error("a's pool was pruned though keep kept it")
	}
	if _, ok := (*c.hosts.Load())[addrB]; ok {
		t.Error("b's pool is still in the map")
	}
	// b is reachable again through a new pool.
	clientDo(t, c, clientReq(t, "GET", b.URL, nil))
	if opened, open := cntB.counts(); opened != 2 || open != 1 {
		t.Errorf("b: %d connections opened, %d open; want 2 and 1 (pooled again)", opened, open)
	}
	if opened, _ := cntA.counts(); opened != 1 {
		t.Errorf("a: %d connections opened, want 1", opened)
	}
}

// TestClientPruneInFlight prunes the pool of a request in flight: the
// request completes and its connection is closed instead of pooled.
func TestClientPruneInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv, cnt := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	}))
	c := newTestClient(t, ClientOptions{})
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.RoundTrip(clientReq(t, "GET", srv.URL, nil))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		done <- result{string(b), err}
	}()
	<-entered
	if n := c.Prune(func(string) bool { return false }); n != 1 {
		t.Fatalf("pruned %d pools, want the in-flight request's (no idle connection)", n)
	}
	close(release)
	if r := <-done; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	clientWaitFor(t, "the pruned pool's connection closed after its request", func() bool { _, open := cnt.counts(); return open == 0 })
}

func TestClientMaxRequestsPerConnection(t *testing.T) {
	var mu sync.Mutex
	var closes []bool // r.Close per request, in order
	srv, cnt := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		closes = append(closes, r.Close)
		mu.Unlock()
	}))
	c := newTestClient(t, ClientOptions{MaxRequestsPerConnection: 3})
	for range 7 {
		clientDo(t, c, clientReq(t, "GET", srv.URL, nil))
	}
	if opened, _ := cnt.counts(); opened != 3 {
		t.Errorf("7 requests at 3 per connection opened %d connections, want 3", opened)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []bool{false, false, true, false, false, true, false}
	if !slices.Equal(closes, want) {
		t.Errorf("Connection: close per request = %v, want %v (on each connection's third)", closes, want)
	}
}

func TestClientDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := newTestClient(t, ClientOptions{})
	_, err = c.RoundTrip(clientReq(t, "GET", "http://"+addr, nil))
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("err = %v, want a dial *net.OpError", err)
	}
}

func TestClientInvalidRequest(t *testing.T) {
	srv, _ := clientTestServer(t, clientEcho)
	c := newTestClient(t, ClientOptions{})
	req := clientReq(t, "GET", srv.URL, nil)
	req.Header["X-Bad"] = []string{"a\r\nInjected: 1"}
	if _, err := c.RoundTrip(req); err == nil {
		t.Error("header value with CRLF was sent")
	}
}
