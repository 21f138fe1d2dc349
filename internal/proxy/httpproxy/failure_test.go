package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func slash() runtime.RouteMatch { return runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/"} }

// flaky answers the first n requests with status, then echoes.
func flaky(n int32, status int) http.Handler {
	var calls atomic.Int32
	ok := echo("ok")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			w.WriteHeader(status)
			return
		}
		ok.ServeHTTP(w, r)
	})
}

// stall blocks until the request is cancelled.
var stall = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

func TestLocalReplies(t *testing.T) {
	down := runtime.Endpoint{Host: "127.0.0.1", Port: 1, Weight: 1, Healthy: false}
	type want struct {
		Status   int
		Flags    string
		Body     string
		Attempts int
	}
	tests := []struct {
		name    string
		cluster *runtime.Cluster
		action  func(*runtime.ForwardAction)
		host    string
		grpc    bool
		want    want
	}{
		{name: "no route", cluster: cluster("c", runtime.HTTP1, backend(t, echo("c"))), host: "unknown",
			want: want{Status: 404, Flags: "NR"}},
		{name: "no healthy upstream", cluster: cluster("c", runtime.HTTP1, down),
			want: want{Status: 503, Flags: "UH", Body: "no healthy upstream"}},
		{name: "no endpoints at all", cluster: cluster("c", runtime.HTTP1),
			want: want{Status: 503, Flags: "UH", Body: "no healthy upstream"}},
		{name: "connect failure", cluster: cluster("c", runtime.HTTP1, closedEndpoint(t)),
			want: want{Status: 503, Flags: "UF", Body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure", Attempts: 1}},
		{name: "connect failure h2", cluster: cluster("c", runtime.HTTP2, closedEndpoint(t)),
			want: want{Status: 503, Flags: "UF", Body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure", Attempts: 1}},
		{name: "route timeout", cluster: cluster("c", runtime.HTTP1, backend(t, stall)),
			action: func(f *runtime.ForwardAction) { f.Timeout = 50 * time.Millisecond },
			want:   want{Status: 504, Flags: "UT", Body: "upstream request timeout", Attempts: 1}},
		{name: "per-try timeout, retries exhausted", cluster: cluster("c", runtime.HTTP1, backend(t, stall)),
			action: func(f *runtime.ForwardAction) {
				f.Retry = &runtime.RetryPolicy{Attempts: 1, PerTryTimeout: 30 * time.Millisecond, RetryOn: []string{"5xx"}}
			},
			want: want{Status: 504, Flags: "URX,UT", Body: "upstream request timeout", Attempts: 2}},
		{name: "gRPC local reply", cluster: cluster("c", runtime.HTTP2, down), grpc: true,
			want: want{Status: 200, Flags: "UH"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fwd("c")
			if tt.action != nil {
				tt.action(f)
			}
			cfg := config([]*runtime.Cluster{tt.cluster}, &runtime.VirtualHost{
				Name: "svc", Domains: []string{"svc"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: f}},
			})
			var info RequestInfo
			h := newHandler(t, cfg, Options{OnDone: func(_ *http.Request, i *RequestInfo) { info = *i }})
			host := tt.host
			if host == "" {
				host = "svc"
			}
			req := httptest.NewRequest("GET", "http://"+host+"/", nil)
			if tt.grpc {
				req.Header.Set("Content-Type", "application/grpc")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := want{Status: rec.Code, Flags: info.Flags, Body: rec.Body.String(), Attempts: info.Attempts}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.grpc {
				if got, want := rec.Header().Get("Grpc-Status"), "14"; got != want {
					t.Errorf("grpc-status = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestRetries(t *testing.T) {
	type want struct {
		Status   int
		Flags    string
		Attempts int
		Body     string
	}
	tests := []struct {
		name     string
		upstream []runtime.Endpoint
		policy   *runtime.RetryPolicy
		body     string
		chunked  bool
		want     want
	}{
		{
			name:     "503 then 200",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 503))},
			policy:   &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}},
			want:     want{Status: 200, Attempts: 2},
		},
		{
			name:     "503 then 200 replays the body",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 503))},
			policy:   &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"gateway-error"}},
			body:     "hello",
			want:     want{Status: 200, Attempts: 2, Body: "hello"},
		},
		{
			name:     "streamed body is not replayed",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 503))},
			policy:   &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}},
			body:     "hello",
			chunked:  true,
			want:     want{Status: 503, Attempts: 1},
		},
		{
			name:     "retries exhausted",
			upstream: []runtime.Endpoint{backend(t, flaky(100, 503))},
			policy:   &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}},
			want:     want{Status: 503, Flags: "URX", Attempts: 3},
		},
		{
			name:     "not a retriable condition",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 503))},
			policy:   &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure"}},
			want:     want{Status: 503, Attempts: 1},
		},
		{
			name:     "retriable status code",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 418))},
			policy:   &runtime.RetryPolicy{Attempts: 1, RetryOn: []string{"retriable-status-codes"}, StatusCodes: []uint32{418}},
			want:     want{Status: 200, Attempts: 2},
		},
		{
			name:     "retriable 4xx",
			upstream: []runtime.Endpoint{backend(t, flaky(1, 409))},
			policy:   &runtime.RetryPolicy{Attempts: 1, RetryOn: []string{"retriable-4xx"}},
			want:     want{Status: 200, Attempts: 2},
		},
		{
			name:     "connect failure then another endpoint",
			upstream: []runtime.Endpoint{closedEndpoint(t), backend(t, echo("ok"))},
			policy:   &runtime.RetryPolicy{Attempts: 1, RetryOn: []string{"connect-failure"}},
			chunked:  true, // an unread streamed body may be retried
			body:     "streamed",
			want:     want{Status: 200, Body: "streamed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fwd("c")
			f.Retry = tt.policy
			cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, tt.upstream...)}, &runtime.VirtualHost{
				Name: "svc", Domains: []string{"*"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: f}},
			})
			var info RequestInfo
			h := newHandler(t, cfg, Options{OnDone: func(_ *http.Request, i *RequestInfo) { info = *i }})
			// Two requests so that round robin starts on each endpoint once.
			for range 2 {
				method := "GET"
				var req *http.Request
				if tt.body != "" {
					method = "POST"
				}
				req = httptest.NewRequest(method, "http://svc/", strings.NewReader(tt.body))
				if tt.chunked {
					req.ContentLength = -1
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				got := want{Status: rec.Code, Flags: info.Flags, Attempts: info.Attempts}
				if rec.Header().Get("Content-Type") == "application/json" {
					got.Body = decode(t, rec.Body).Body
				}
				if len(tt.upstream) > 1 {
					got.Attempts = 0 // depends on where round robin starts
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if len(tt.upstream) == 1 {
					break
				}
			}
		})
	}
}

func TestWeightedClusters(t *testing.T) {
	f := &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{
		{Name: "v1", Weight: 25, ResponseHeaders: runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-version", Value: "v1"}}}},
		{Name: "v2", Weight: 75, RequestHeaders: runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-to", Value: "v2"}}}},
		{Name: "v3", Weight: 0},
	}}
	cfg := config([]*runtime.Cluster{
		cluster("v1", runtime.HTTP1, backend(t, echo("v1"))),
		cluster("v2", runtime.HTTP1, backend(t, echo("v2"))),
		cluster("v3", runtime.HTTP1, backend(t, echo("v3"))),
	}, &runtime.VirtualHost{Name: "svc", Domains: []string{"*"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: f}}})
	h := newHandler(t, cfg, Options{})
	const n = 800
	got := map[string]int{}
	for range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://svc/", nil))
		s := decode(t, rec.Body)
		got[s.Backend]++
		switch s.Backend {
		case "v1":
			if rec.Header().Get("X-Version") != "v1" {
				t.Fatalf("v1 response lacks its x-version header")
			}
		case "v2":
			if s.Header.Get("X-To") != "v2" {
				t.Fatalf("v2 request lacks its x-to header")
			}
		}
	}
	if got["v3"] != 0 {
		t.Errorf("weight-0 cluster got %d requests", got["v3"])
	}
	if share := float64(got["v2"]) / n; share < 0.68 || share > 0.82 {
		t.Errorf("v2 share = %.2f, want 0.75±0.07 (counts %v)", share, got)
	}
}
