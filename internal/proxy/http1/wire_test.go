package http1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzWireWriteHead: whatever the request, the head written either is an
// error or parses back (net/http's server parser) to the same method,
// target, host and header values: nothing smuggled into another field.
func FuzzWireWriteHead(f *testing.F) {
	f.Add("GET", "/a?b=c", "svc", "X-Test", "v")
	f.Add("POST", "/", "svc:80", "X-Test", "a\r\nInjected: 1")
	f.Add("GET", "/ x", "h", "Bad Name", "")
	f.Fuzz(func(t *testing.T, method, target, host, name, value string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{name: {value}}}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := wireWriteHead(bw, req, wireNoBody, false); err != nil {
			return
		}
		_ = bw.Flush()
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("written head does not parse: %v\n%q", err, buf.String())
		}
		if method == "" {
			method = http.MethodGet // as net/http
		}
		if got.Method != method || got.Host != host || got.RequestURI != u.RequestURI() {
			t.Errorf("request line/host: got %s %s %s, want %s %s %s", got.Method, got.RequestURI, got.Host,
				method, u.RequestURI(), host)
		}
		if buf.Len() != 0 {
			t.Errorf("%d bytes after the head", buf.Len())
		}
		ck := http.CanonicalHeaderKey(name)
		switch ck {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "User-Agent", "Connection":
			return
		}
		want := []string{strings.Trim(value, " \t")}
		if diff := cmp.Diff(want, got.Header[ck]); diff != "" {
			t.Errorf("header %q (-want +got)\n%s", ck, diff)
		}
	})
}

// FuzzClientResponse feeds arbitrary bytes as the upstream's answer: the
// client must not panic or hang, and a connection is pooled only after a
// response it read completely.
func FuzzClientResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nok\r\n0\r\nX: 1\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		c := NewClient(ClientOptions{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				// Read the request head, answer, and close: the
				// client sees EOF after the answer.
				br := bufio.NewReader(server)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = server.Write(answer)
			}()
			return client, nil
		}})
		defer c.Close()
		req, err := http.NewRequest("GET", "http://up/", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := c.RoundTrip(req.WithContext(ctx))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	})
}
