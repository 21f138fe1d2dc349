package httpproxy

import (
	"bufio"
	"net/http"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestStreamingResponsesAreNotBuffered: a response without a length
// (chunked, as a stream or a long poll sends it) and a server-sent events
// stream reach the client as the upstream flushes each part, while the
// upstream is still writing; the proxy must not hold them back until the
// response ends. The upstream sends its second part only after the client
// has read the first, so a buffering proxy fails the deadline.
func TestStreamingResponsesAreNotBuffered(t *testing.T) {
	for _, tt := range []struct {
		name, contentType string
		client            func(testing.TB) *http.Client
		upstream          runtime.Protocol
	}{
		{"chunked over HTTP/1.1", "text/plain", h1Client, runtime.HTTP1},
		{"server-sent events", "text/event-stream", h1Client, runtime.HTTP1},
		{"chunked over h2c", "text/plain", h2cClient, runtime.HTTP2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			firstRead := make(chan struct{})
			up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Write([]byte("first\n"))
				w.(http.Flusher).Flush()
				select {
				case <-firstRead:
				case <-r.Context().Done():
					return
				}
				w.Write([]byte("second\n"))
			}))
			cfg := config([]*runtime.Cluster{cluster("c", tt.upstream, up)}, anyHost("c", nil))
			addr := proxy(t, newHandler(t, cfg, Options{}))
			resp, err := tt.client(t).Get("http://" + addr + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			select {
			case l := <-lines:
				if l != "first" {
					t.Fatalf("first line %q, want first", l)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the first part did not arrive while the upstream was still writing: the proxy buffered it")
			}
			close(firstRead)
			if l := <-lines; l != "second" {
				t.Fatalf("second line %q, want second", l)
			}
			for range lines { // drain until the body ends
			}
		})
	}
}
