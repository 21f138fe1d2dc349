package httpproxy

import (
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// rateLimitFilter is envoy.filters.http.local_ratelimit. The filter's own
// bucket is shared by every request of the listener; a route's (or virtual
// host's) typed_per_filter_config has a bucket of its own, as in Envoy.
//
// Buckets survive config updates that leave them unchanged: the proxy
// rebuilds its filter chains on every snapshot (an endpoint change
// included), and a bucket refilled to the brim on each one would let
// bursts through. All buckets are made when the chain is built, so the
// request path only reads maps.
type rateLimitFilter struct {
	cfg    *runtime.RateLimit
	bucket *tokenBucket // nil: the filter's config has no token_bucket
	// scoped holds the overrides' buckets by override; byKey the same by
	// scope, for the next chain to adopt. Both are read-only once built.
	scoped map[*runtime.RateLimit]*tokenBucket
	byKey  map[scopeKey]*tokenBucket
}

// scopeKey names an override's bucket across configs: its virtual host,
// its route ("" for a virtual host's override) and its shape. Unnamed
// routes of one virtual host with identical buckets share one.
type scopeKey struct {
	vhost, route string
	bucket       runtime.TokenBucket
}

// newRateLimitFilter builds the filter named name with a bucket for each
// override in tbl (nil: no routes), adopting prev's buckets (prev may be
// nil) whose config is unchanged. now nil is time.Now.
func newRateLimitFilter(name string, cfg *runtime.RateLimit, tbl *table, prev *rateLimitFilter, now func() time.Time) *rateLimitFilter {
	if now == nil {
		now = time.Now
	}
	f := &rateLimitFilter{cfg: cfg}
	if cfg.Bucket != nil {
		if prev != nil && prev.bucket != nil && prev.bucket.cfg == *cfg.Bucket {
			f.bucket = prev.bucket
		} else {
			f.bucket = newTokenBucket(*cfg.Bucket, now)
		}
	}
	add := func(o *runtime.FilterOverride, key scopeKey) {
		if o == nil || o.RateLimit == nil || o.RateLimit.Bucket == nil {
			return
		}
		key.bucket = *o.RateLimit.Bucket
		b := f.byKey[key]
		if b == nil && prev != nil {
			b = prev.byKey[key]
		}
		if b == nil {
			b = newTokenBucket(key.bucket, now)
		}
		if f.scoped == nil {
			f.scoped, f.byKey = map[*runtime.RateLimit]*tokenBucket{}, map[scopeKey]*tokenBucket{}
		}
		f.scoped[o.RateLimit], f.byKey[key] = b, b
	}
	tbl.eachVhost(func(vh *vhost) {
		add(vh.perFilter[name], scopeKey{vhost: vh.name})
		for _, r := range vh.routes {
			add(r.rt.PerFilter[name], scopeKey{vhost: vh.name, route: r.rt.Name})
		}
	})
	return f
}

func (f *rateLimitFilter) decode(fx *filterCtx) bool {
	cfg, b := f.cfg, f.bucket
	if o := f.override(fx); o != nil {
		cfg, b = o, f.scoped[o]
	}
	if b == nil || !roll(cfg.Enabled) {
		return true
	}
	if b.take() {
		return true
	}
	if !roll(cfg.Enforced) {
		// Limited but not enforced: the request goes on, marked.
		m := compileMutation(cfg.RequestHeaders)
		m.apply(fx.r.Header, &fx.r.Host)
		return true
	}
	fx.ex.addFlag("RL")
	hd := fx.ex.Header()
	hd["X-Envoy-Ratelimited"] = []string{"true"}
	m := compileMutation(cfg.ResponseHeaders)
	m.apply(hd, nil)
	if cfg.ResourceExhausted && isGRPC(fx.r) {
		if fx.ex.route != nil {
			fx.ex.route.respHdr.apply(hd, nil)
		}
		hd[hdrContentType] = applicationGRPC
		hd["Grpc-Status"] = []string{"8"} // RESOURCE_EXHAUSTED
		hd["Grpc-Message"] = []string{"local_rate_limited"}
		fx.ex.WriteHeader(http.StatusOK)
		return false
	}
	fx.reply(cfg.Status, "", "local_rate_limited")
	return false
}

// override returns the route's, else the virtual host's, rate limit
// override; nil when neither has one.
func (f *rateLimitFilter) override(fx *filterCtx) *runtime.RateLimit {
	if fx.route != nil {
		if o := fx.route.rt.PerFilter[fx.name]; o != nil && o.RateLimit != nil {
			return o.RateLimit
		}
	}
	if fx.vh != nil {
		if o := fx.vh.perFilter[fx.name]; o != nil && o.RateLimit != nil {
			return o.RateLimit
		}
	}
	return nil
}

// eachVhost calls fn once for each virtual host of t (nil: none).
func (t *table) eachVhost(fn func(*vhost)) {
	if t == nil {
		return
	}
	seen := map[*vhost]bool{}
	visit := func(vh *vhost) {
		if vh != nil && !seen[vh] {
			seen[vh] = true
			fn(vh)
		}
	}
	visit(t.star)
	for _, vh := range t.exact {
		visit(vh)
	}
	for _, w := range t.suffix {
		visit(w.vh)
	}
	for _, w := range t.prefix {
		visit(w.vh)
	}
}

func isGRPC(r *http.Request) bool {
	ct := r.Header[hdrContentType]
	return len(ct) > 0 && len(ct[0]) >= 16 && ct[0][:16] == "application/grpc"
}

// tokenBucket is a lock-free token bucket with continuous refill at
// TokensPerFill/FillInterval, as Envoy's AtomicTokenBucketImpl: the only
// state is the instant (seconds since base) at which the bucket was last
// empty; the tokens at t are min(max, (t-empty)·rate), and taking one
// moves that instant forward by 1/rate with a compare-and-swap.
type tokenBucket struct {
	cfg   runtime.TokenBucket
	max   float64
	rate  float64 // tokens per second
	base  time.Time
	now   func() time.Time
	empty atomic.Uint64 // math.Float64bits of the empty instant
}

func newTokenBucket(cfg runtime.TokenBucket, now func() time.Time) *tokenBucket {
	b := &tokenBucket{cfg: cfg, max: float64(cfg.MaxTokens), now: now, base: now()}
	b.rate = float64(max(cfg.TokensPerFill, 1)) / max(cfg.FillInterval, time.Millisecond).Seconds()
	b.empty.Store(math.Float64bits(-b.max / b.rate)) // starts full
	return b
}

// slack absorbs float rounding so that a whole token is never refused
// by 1e-12 of a token.
const slack = 1e-9

// take consumes one token; false when the bucket is empty.
func (b *tokenBucket) take() bool {
	if b.max < 1 {
		return false
	}
	t := b.now().Sub(b.base).Seconds()
	for {
		old := b.empty.Load()
		e := math.Float64frombits(old)
		if min(b.max, (t-e)*b.rate) < 1-slack {
			return false
		}
		next := max(e, t-b.max/b.rate) + 1/b.rate
		if b.empty.CompareAndSwap(old, math.Float64bits(next)) {
			return true
		}
	}
}
