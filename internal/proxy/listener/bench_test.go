package listener

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// BenchmarkListenerHTTP1: Istio's benchmark request (a 1 KiB POST echoed
// back, keep-alive) through a bound HTTP listener to a loopback upstream,
// from a raw client on one connection. The process holds client, proxy
// and upstream; their costs outside the proxy's downstream side are the
// same whichever server serves it. Run under `strace -c -f` for syscalls
// per request.
func BenchmarkListenerHTTP1(b *testing.B) {
	up := echoUpstream(b)
	addr := freeAddr(b)
	m, err := New(Options{DrainTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Apply(cfgTo("1", up, httpListener("l", addr))); err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := "POST /echo HTTP/1.1\r\nHost: server.bench\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024)
	br := bufio.NewReader(c)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

func echoUpstream(b *testing.B) runtime.Endpoint {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close(); <-done })
	ap := netip.MustParseAddrPort(l.Addr().String())
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}
