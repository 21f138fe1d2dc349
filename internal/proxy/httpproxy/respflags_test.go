package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// rawUpstream is a loopback HTTP/1.1 upstream that reads one request per
// connection and hands the connection to act, which owns closing it.
func rawUpstream(t *testing.T, act func(c net.Conn)) runtime.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				_ = c.Close()
				continue
			}
			act(c)
		}
	}()
	return endpointOf(t, l.Addr().String())
}

// TestResponseFlagsUCDC provokes Envoy's UC (the upstream connection
// ends before or during the response) and DC (the client goes away) with
// real loopback connections on both sides of the proxy.
func TestResponseFlagsUCDC(t *testing.T) {
	closeNow := func(c net.Conn) { _ = c.Close() }
	midBody := func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
		_ = c.Close()
	}
	// slowBody sends headers and a little body, then waits for the proxy
	// to hang up.
	slowBody := func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}
	// noAnswer waits for the proxy to hang up without answering.
	noAnswer := func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}
	tests := []struct {
		name string
		act  func(net.Conn)
		// cancelAfterHeaders cancels the client once response headers are
		// in; cancelInFlight once the proxy holds the request.
		cancelAfterHeaders, cancelInFlight bool
		wantStatus                         int
		wantFlags                          string
		wantBody                           string
	}{
		{name: "UC: upstream closes before headers", act: closeNow, wantStatus: 503, wantFlags: "UC",
			wantBody: "upstream connect error or disconnect/reset before headers. reset reason: connection termination"},
		{name: "UC: upstream closes mid-body", act: midBody, wantStatus: 200, wantFlags: "UC"},
		{name: "DC: client leaves before headers", act: noAnswer, cancelInFlight: true, wantStatus: 0, wantFlags: "DC"},
		{name: "DC: client leaves mid-body", act: slowBody, cancelAfterHeaders: true, wantStatus: 200, wantFlags: "DC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := rawUpstream(t, tc.act)
			cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, ep)}, oneRoute(fwd("c")))
			infos := make(chan RequestInfo, 1)
			h := newHandler(t, cfg, Options{OnDone: func(_ *http.Request, i *RequestInfo) { infos <- *i }})
			url := serve(t, h)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			defer client.CloseIdleConnections()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/", nil)
			req.Host = "svc"
			if tc.cancelInFlight {
				go func() {
					deadline := time.Now().Add(5 * time.Second)
					for h.InFlight() == 0 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond) // polling a condition, bounded
					}
					cancel()
				}()
			}
			var body string
			resp, err := client.Do(req)
			if err == nil {
				if tc.cancelAfterHeaders {
					cancel()
				}
				b, _ := io.ReadAll(resp.Body)
				body = string(b)
				resp.Body.Close()
			}
			var info RequestInfo
			select {
			case info = <-infos:
			case <-time.After(10 * time.Second):
				t.Fatal("the proxy never finished the request")
			}
			if info.Flags != tc.wantFlags || info.Status != tc.wantStatus {
				t.Errorf("status %d flags %q, want %d %q", info.Status, info.Flags, tc.wantStatus, tc.wantFlags)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
			if tc.wantStatus == 200 && resp != nil && resp.Header.Get("Content-Length") != strconv.Itoa(1000) {
				t.Errorf("content-length %q: the proxy should pass the upstream's", resp.Header.Get("Content-Length"))
			}
		})
	}
}
