package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkServerKeepAlive: one keep-alive connection, a 1 KiB POST
// echoed back with its length (Istio's benchmark request), the handler
// flushing after its write as httputil.ReverseProxy does. Allocations
// count the client side too, the same for both servers.
func BenchmarkServerKeepAlive(b *testing.B) {
	body := strings.Repeat("x", 1024)
	req := "POST /echo HTTP/1.1\r\nHost: server.bench\r\nContent-Length: 1024\r\n\r\n" + body
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 0, 2048)
		buf, _ = readAllInto(r.Body, buf)
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(buf))}
		w.Write(buf)
		w.(http.Flusher).Flush()
	})
	for _, sv := range []struct {
		name  string
		serve func(*testing.B) (addr string)
	}{
		{"http1", func(b *testing.B) string { return startServer(b, ServerOptions{}, h).addr }},
		{"net-http", func(b *testing.B) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: h}
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(ln) }()
			b.Cleanup(func() { _ = srv.Close(); <-done })
			return ln.Addr().String()
		}},
	} {
		b.Run(sv.name, func(b *testing.B) {
			c, err := net.Dial("tcp", sv.serve(b))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
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
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

func readAllInto(r io.Reader, buf []byte) ([]byte, error) {
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil || len(buf) == cap(buf) {
			return buf, err
		}
	}
}
