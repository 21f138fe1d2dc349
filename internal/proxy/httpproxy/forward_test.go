package httpproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestHopByHopHeaders: hop-by-hop headers, the fixed ones and those the
// Connection header names, stop at the proxy in both directions; TE is
// passed on only as "trailers".
func TestHopByHopHeaders(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Up-Hop\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
			"Proxy-Authenticate: Basic\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok")
		_ = c.Close()
	})
	echoUp := backend(t, echo("a"))
	tests := []struct {
		name   string
		header map[string]string
		want   map[string][]string // upstream request headers
	}{
		{"fixed hop-by-hop headers", map[string]string{"Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic x",
			"Proxy-Connection": "keep-alive", "Trailer": "X-T", "X-End": "1"},
			map[string][]string{"X-End": {"1"}}},
		{"headers named by Connection", map[string]string{"Connection": "keep-alive, x-hop , X-Other", "X-Hop": "1",
			"X-Other": "2", "X-End": "1"},
			map[string][]string{"X-End": {"1"}}},
		{"TE: trailers is passed on", map[string]string{"Te": "gzip, trailers", "X-End": "1"},
			map[string][]string{"Te": {"trailers"}, "X-End": {"1"}}},
		{"other TE is dropped", map[string]string{"Te": "gzip", "X-End": "1"},
			map[string][]string{"X-End": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, config([]*runtime.Cluster{cluster("c", runtime.HTTP1, echoUp)}, anyHost("c", nil)), Options{})
			req := httptest.NewRequest("GET", "http://svc/", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			s := decode(t, rec.Body)
			got := map[string][]string{}
			for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Trailer",
				"X-Hop", "X-Other", "Te", "X-End"} {
				if v := s.Header[k]; v != nil {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("upstream request headers (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("response", func(t *testing.T) {
		h := newHandler(t, config([]*runtime.Cluster{cluster("c", runtime.HTTP1, up)}, anyHost("c", nil)), Options{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://svc/", nil))
		got := map[string][]string{}
		for _, k := range []string{"Connection", "X-Up-Hop", "Keep-Alive", "Proxy-Authenticate", "X-Kept"} {
			if v := rec.Header()[k]; v != nil {
				got[k] = v
			}
		}
		if diff := cmp.Diff(map[string][]string{"X-Kept": {"1"}}, got); diff != "" {
			t.Errorf("response headers (-want +got):\n%s", diff)
		}
	})
}

// TestInformational: 1xx responses (103 Early Hints) reach the client
// ahead of the final response, with their own headers only, from HTTP/1.1
// and HTTP/2 upstreams.
func TestInformational(t *testing.T) {
	if clientTraceKey == nil {
		t.Fatal("clientTraceKey: httptrace no longer looks its trace up through Context.Value")
	}
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("X-Final", "1")
		_, _ = io.WriteString(w, "done")
	}))
	for _, proto := range []runtime.Protocol{runtime.HTTP1, runtime.HTTP2} {
		t.Run(map[runtime.Protocol]string{runtime.HTTP1: "h1", runtime.HTTP2: "h2c"}[proto], func(t *testing.T) {
			h := newHandler(t, config([]*runtime.Cluster{cluster("c", proto, up)}, anyHost("c", nil)), Options{})
			addr := proxy(t, h)
			var mu sync.Mutex
			var got []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hd textproto.MIMEHeader) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, itoa(code)+" "+hd.Get("Link")+" "+hd.Get("X-Final"))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+addr+"/", nil)
			resp, err := h1Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "done" || resp.Header.Get("X-Final") != "1" || resp.Header.Get("Link") != "" {
				t.Errorf("final response %d %q x-final=%q link=%q", resp.StatusCode, body, resp.Header.Get("X-Final"), resp.Header.Get("Link"))
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{"103 </style.css>; rel=preload "}, got); diff != "" {
				t.Errorf("1xx responses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrailers: trailers the upstream announced and ones it did not
// (http.TrailerPrefix) both reach an HTTP/1.1 client.
func TestTrailers(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Announced", "a")
		w.Header().Set(http.TrailerPrefix+"X-Late", "b")
	}))
	h := newHandler(t, config([]*runtime.Cluster{cluster("c", runtime.HTTP1, up)}, anyHost("c", nil)), Options{})
	resp, err := h1Client(t).Get("http://" + proxy(t, h) + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := map[string]string{"body": string(body), "X-Announced": resp.Trailer.Get("X-Announced"), "X-Late": resp.Trailer.Get("X-Late")}
	if diff := cmp.Diff(map[string]string{"body": "body", "X-Announced": "a", "X-Late": "b"}, got); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

// flushCounter is a ResponseWriter that counts flushes; the first closes
// flushed.
type flushCounter struct {
	httptest.ResponseRecorder
	flushes int
	flushed chan struct{}
}

func (f *flushCounter) Flush() {
	if f.flushes == 0 {
		close(f.flushed)
	}
	f.flushes++
}

// TestCompleteBodyIsNotFlushed: a response whose body arrives whole is
// not flushed by the proxy, so that the server sends head and body in one
// write when the handler returns; a body that arrives in parts is flushed
// part by part (TestStreamingResponsesAreNotBuffered checks it end to end).
func TestCompleteBodyIsNotFlushed(t *testing.T) {
	payload := strings.Repeat("x", 1024)
	flushed := make(chan struct{})
	tests := []struct {
		name        string
		h           http.HandlerFunc
		wantFlushes bool
	}{
		{"content-length", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, payload) }, false},
		{"no body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, false},
		{"echoed request body", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		}, false},
		{"chunked parts", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			select { // the second part only once the proxy passed the first on
			case <-flushed:
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, "second")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := backend(t, tt.h)
			h := newHandler(t, config([]*runtime.Cluster{cluster("c", runtime.HTTP1, up)}, anyHost("c", nil)), Options{})
			w := &flushCounter{ResponseRecorder: *httptest.NewRecorder(), flushed: flushed}
			if !tt.wantFlushes {
				w.flushed = make(chan struct{})
			}
			h.ServeHTTP(w, httptest.NewRequest("POST", "http://svc/", strings.NewReader(payload)))
			if (w.flushes > 0) != tt.wantFlushes {
				t.Errorf("%d flushes, want flushes: %v", w.flushes, tt.wantFlushes)
			}
			if w.Code/100 != 2 {
				t.Errorf("status %d", w.Code)
			}
		})
	}
}

func TestGuardedBody(t *testing.T) {
	b := &guardedBody{rc: io.NopCloser(strings.NewReader("abc"))}
	p := make([]byte, 1)
	if n, err := b.Read(p); n != 1 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	_ = b.Close()
	if _, err := b.Read(p); err != errBodyClosed {
		t.Fatalf("read after close: %v, want errBodyClosed", err)
	}
}

// FuzzHeaderTokens: headerHasToken agrees with splitting on commas, and
// upstreamHeader never lets a hop-by-hop header through.
func FuzzHeaderTokens(f *testing.F) {
	f.Add("keep-alive, X-Hop", "x-hop")
	f.Add(" ,\t trailers ,", "trailers")
	f.Add("Upgrade", "")
	f.Fuzz(func(t *testing.T, v, token string) {
		want := false
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(part, " \t"), token) {
				want = true
			}
		}
		// An empty token is never asked for; empty list elements may be
		// skipped either way.
		if got := headerHasToken([]string{v}, token); got != want && token != "" {
			t.Fatalf("headerHasToken(%q, %q) = %v, want %v", v, token, got, want)
		}
		in := http.Header{"Connection": {v}, http.CanonicalHeaderKey(token): {"1"}, "Upgrade": {"x"}, "X-End": {"1"}}
		out := http.Header{}
		upstreamHeader(out, in)
		for k := range out {
			if isHopHeader(k) || headerHasToken([]string{v}, k) {
				t.Fatalf("upstreamHeader kept %q (Connection: %q)", k, v)
			}
		}
	})
}
