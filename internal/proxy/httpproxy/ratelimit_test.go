package httpproxy

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestTokenBucket(t *testing.T) {
	clock := &testClock{now: time.Unix(1000, 0)}
	type step struct {
		advance time.Duration
		takes   int // attempts
		want    int // successes
	}
	tests := []struct {
		name   string
		bucket runtime.TokenBucket
		steps  []step
	}{
		{"starts full, then empty", runtime.TokenBucket{MaxTokens: 3, TokensPerFill: 1, FillInterval: time.Second},
			[]step{{0, 5, 3}}},
		{"refills at tokens_per_fill per fill_interval", runtime.TokenBucket{MaxTokens: 10, TokensPerFill: 2, FillInterval: time.Second},
			[]step{{0, 10, 10}, {time.Second, 5, 2}, {500 * time.Millisecond, 5, 1}, {250 * time.Millisecond, 1, 0}}},
		{"never above max_tokens", runtime.TokenBucket{MaxTokens: 4, TokensPerFill: 1, FillInterval: 100 * time.Millisecond},
			[]step{{0, 4, 4}, {time.Hour, 10, 4}}},
		{"max_tokens 0 limits everything", runtime.TokenBucket{MaxTokens: 0, TokensPerFill: 100, FillInterval: time.Second},
			[]step{{0, 3, 0}, {time.Minute, 3, 0}}},
		{"fractional rate", runtime.TokenBucket{MaxTokens: 1, TokensPerFill: 3, FillInterval: time.Second},
			[]step{{0, 2, 1}, {333 * time.Millisecond, 1, 0}, {time.Millisecond, 1, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTokenBucket(tc.bucket, clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				got := 0
				for range s.takes {
					if b.take() {
						got++
					}
				}
				if got != s.want {
					t.Fatalf("step %d: %d of %d taken, want %d", i, got, s.takes, s.want)
				}
			}
		})
	}
}

// TestTokenBucketConcurrent: concurrent takers never get more than the
// bucket holds.
func TestTokenBucketConcurrent(t *testing.T) {
	clock := &testClock{now: time.Unix(1000, 0)}
	b := newTokenBucket(runtime.TokenBucket{MaxTokens: 100, TokensPerFill: 1, FillInterval: time.Hour}, clock.Now)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if b.take() {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != 100 {
		t.Fatalf("%d tokens taken by 400 attempts, want 100", got.Load())
	}
}

// rateLimit is an Istio-docs local rate limit: enabled and enforced 100%.
func rateLimit(max uint32) *runtime.RateLimit {
	return &runtime.RateLimit{
		Bucket:   &runtime.TokenBucket{MaxTokens: max, TokensPerFill: 1, FillInterval: time.Hour},
		Enabled:  runtime.PercentMillion,
		Enforced: runtime.PercentMillion,
		Status:   429,
	}
}

func TestLocalRateLimit(t *testing.T) {
	type want struct {
		Codes       []int
		Flags       []string
		Limited     string // x-envoy-ratelimited of the last response
		Extra       string // x-local-rate-limit of the last response
		Body        string // of the last response
		GRPC        string // grpc-status of the last response
		UpstreamHdr string // x-would-limit the upstream saw on the last request
	}
	tests := []struct {
		name string
		rl   func(*runtime.RateLimit)
		grpc bool
		want want
	}{
		{name: "third request is limited", rl: func(r *runtime.RateLimit) {
			r.ResponseHeaders = runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-local-rate-limit", Value: "true"}}}
		}, want: want{Codes: []int{200, 200, 429}, Flags: []string{"", "", "RL"}, Limited: "true", Extra: "true", Body: "local_rate_limited"}},
		{name: "configured status", rl: func(r *runtime.RateLimit) { r.Status = 503 },
			want: want{Codes: []int{200, 200, 503}, Flags: []string{"", "", "RL"}, Limited: "true", Body: "local_rate_limited"}},
		{name: "filter_enabled 0% (Envoy's default)", rl: func(r *runtime.RateLimit) { r.Enabled = 0 },
			want: want{Codes: []int{200, 200, 200}, Flags: []string{"", "", ""}}},
		{name: "filter_enforced 0%: marked, not answered", rl: func(r *runtime.RateLimit) {
			r.Enforced = 0
			r.RequestHeaders = runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-would-limit", Value: "1"}}}
		}, want: want{Codes: []int{200, 200, 200}, Flags: []string{"", "", ""}, UpstreamHdr: "1"}},
		{name: "no token bucket", rl: func(r *runtime.RateLimit) { r.Bucket = nil },
			want: want{Codes: []int{200, 200, 200}, Flags: []string{"", "", ""}}},
		{name: "gRPC: UNAVAILABLE", grpc: true,
			want: want{Codes: []int{200, 200, 200}, Flags: []string{"", "", "RL"}, Limited: "true", GRPC: "14"}},
		{name: "gRPC: RESOURCE_EXHAUSTED", grpc: true, rl: func(r *runtime.RateLimit) { r.ResourceExhausted = true },
			want: want{Codes: []int{200, 200, 200}, Flags: []string{"", "", "RL"}, Limited: "true", GRPC: "8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rl := rateLimit(2)
			if tc.rl != nil {
				tc.rl(rl)
			}
			cfg := filterConfig(t, func(l *runtime.HTTPListener) {
				l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRateLimit, RateLimit: rl}}
			}, nil)
			h, flags := handlerWith(t, cfg, nil)
			var got want
			var last result
			for range 3 {
				req := httptest.NewRequest("GET", "http://reviews/", nil)
				if tc.grpc {
					req.Header.Set("Content-Type", "application/grpc")
				}
				last = do(t, h, flags, req)
				got.Codes = append(got.Codes, last.code)
				got.Flags = append(got.Flags, last.flags)
			}
			got.Limited = last.header.Get("X-Envoy-Ratelimited")
			got.Extra = last.header.Get("X-Local-Rate-Limit")
			got.GRPC = last.header.Get("Grpc-Status")
			if last.up == nil {
				got.Body = last.body
			} else {
				got.UpstreamHdr = last.up.Header.Get("X-Would-Limit")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLocalRateLimitPerRoute: a route's override has its own bucket; the
// other routes are not limited (the filter's config has no bucket, as in
// Envoy's "globally disabled, enabled for a route" example).
func TestLocalRateLimitPerRoute(t *testing.T) {
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRateLimit, RateLimit: &runtime.RateLimit{Status: 429}}}
	}, func(r *runtime.Route) {
		r.Name = "limited"
		r.Match = runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/limited", CaseSensitive: true}
		r.PerFilter = map[string]*runtime.FilterOverride{runtime.FilterRateLimit: {RateLimit: rateLimit(1)}}
	})
	vh := cfg.Routes["rt"].VirtualHosts[0]
	vh.Routes = append(vh.Routes, &runtime.Route{Name: "rest", Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true}, Forward: fwd("c")})
	h, flags := handlerWith(t, cfg, nil)
	var got []string
	for _, p := range []string{"/limited", "/limited", "/other", "/other", "/other"} {
		res := do(t, h, flags, httptest.NewRequest("GET", "http://reviews"+p, nil))
		got = append(got, p+" "+http.StatusText(res.code)+" "+res.flags)
	}
	want := []string{"/limited OK ", "/limited Too Many Requests RL", "/other OK ", "/other OK ", "/other OK "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestLocalRateLimitSurvivesUpdate: a snapshot that leaves a bucket's
// config alone (an endpoint change) keeps its tokens; a changed bucket
// starts full.
func TestLocalRateLimitSurvivesUpdate(t *testing.T) {
	rl := rateLimit(1)
	routeRL := rateLimit(1)
	cfg := filterConfig(t, func(l *runtime.HTTPListener) {
		l.Filters = []*runtime.HTTPFilter{{Name: runtime.FilterRateLimit, RateLimit: rl}}
	}, nil)
	pools := NewPools()
	t.Cleanup(func() { _ = pools.Close() })
	flags := new(string)
	h := NewHandler(Options{OnDone: func(_ *http.Request, info *RequestInfo) {
		flagsMu.Lock()
		*flags = info.Flags
		flagsMu.Unlock()
	}})
	update := func() {
		h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil), cfg.Listeners[0])
	}
	get := func(path string) string {
		return do(t, h, flags, httptest.NewRequest("GET", "http://reviews"+path, nil)).flags
	}
	update()
	if f := get("/"); f != "" {
		t.Fatalf("first request flags %q", f)
	}
	update() // same config, as after an EDS change
	if f := get("/"); f != "RL" {
		t.Fatalf("after an unrelated update: flags %q, want RL (the bucket was refilled)", f)
	}
	cfg.Listeners[0].HTTP.Filters[0].RateLimit = rateLimit(2)
	update()
	if f := get("/"); f != "" {
		t.Fatalf("after a bucket change: flags %q, want a fresh bucket", f)
	}

	// The same for a route's bucket.
	cfg.Routes["rt"].VirtualHosts[0].Routes[0].PerFilter = map[string]*runtime.FilterOverride{runtime.FilterRateLimit: {RateLimit: routeRL}}
	update()
	if f := get("/"); f != "" {
		t.Fatalf("route bucket, first request: flags %q", f)
	}
	update()
	update() // two generations: the bucket is carried each time
	if f := get("/"); f != "RL" {
		t.Fatalf("route bucket after updates: flags %q, want RL", f)
	}
}

func BenchmarkTokenBucketTake(b *testing.B) {
	tb := newTokenBucket(runtime.TokenBucket{MaxTokens: 1 << 30, TokensPerFill: 1 << 30, FillInterval: time.Second}, time.Now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.take()
		}
	})
}
