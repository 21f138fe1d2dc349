package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	ups "github.com/trellis-mesh/trellis/internal/proxy/upstream"
)

const (
	// maxReplayBody is the largest request body buffered so that the
	// request can be retried; larger or unknown-length bodies are streamed
	// and retried only if the failed attempt read none of them.
	maxReplayBody = 64 << 10
	// Envoy's default retry back-off base (the cap is 10× base), full jitter.
	retryBase = 25 * time.Millisecond
)

var (
	errNoHealthy = errors.New("httpproxy: no healthy upstream")
	errOverflow  = errors.New("httpproxy: upstream overflow")
)

// roundTripper sends one proxied request upstream: it picks an endpoint per
// attempt and retries per the route's policy. The request's exchange is in
// its context.
type roundTripper struct{}

var _ http.RoundTripper = roundTripper{}

func (rt roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	var body *replayBody
	resp, err := rt.roundTrip(out, &body)
	body.release()
	return resp, err
}

// roundTrip is RoundTrip; *bodyp is the replay buffer it made, if any.
func (roundTripper) roundTrip(out *http.Request, bodyp **replayBody) (*http.Response, error) {
	ctx := out.Context()
	ex := ctx.Value(exchangeKey{}).(*exchange)
	up := ex.dest.up
	pol := ex.route.retry
	tries := 1
	var body *replayBody
	if pol != nil {
		tries += int(pol.attempts)
		if out.Body != nil && out.Body != http.NoBody && tries > 1 {
			var err error
			if body, err = newReplayBody(&ex.replay, out.Body, out.ContentLength); err != nil {
				return nil, err
			}
			*bodyp = body
			out.Body = body.reader()
			if body.buf != nil {
				out.GetBody = body.getBody
			}
		}
	}
	choice := ex.choiceFor()
	var tried []string // addresses already attempted, for previous_hosts
	for attempt := 1; ; attempt++ {
		pick, ok := pickHost(up, choice, pol, tried)
		if !ok {
			ex.addFlag("UH")
			return nil, errNoHealthy
		}
		ex.picked.Done()
		ex.picked = pick
		ex.info.Upstream = pick.Addr
		ex.info.Attempts = attempt
		tried = append(tried, pick.Addr)

		rt := up.transportForEndpoint(pick.Endpoint, ex.downH2, ex.upgrade)
		h1, isH1 := rt.(*http1.Client)
		if !isH1 || !http1.SyncBody(out) {
			// The transport may use out after RoundTrip returns (HTTP/2
			// streams the body, a large HTTP/1.1 body is written by a
			// goroutine): neither the exchange nor the body's buffer may
			// be recycled.
			ex.shared = true
			if body != nil {
				body.shared = true
			}
		}
		if up.ext.state != nil {
			ex.releaseAttempt()
			rel, err := up.ext.state.Breakers.Acquire(ctx, up.exclusive(rt))
			if err != nil {
				if errors.Is(err, ups.ErrOverflow) {
					ex.addFlag("UO")
					return nil, errOverflow
				}
				return nil, err
			}
			ex.up.attempt = rel
		}

		req := out
		if attempt > 1 {
			req = retryRequest(out, body)
		}
		req.URL.Host = pick.Addr
		req.Header[hdrAttemptCount] = attemptValue(attempt)
		tryCtx := ctx
		if pol != nil && pol.perTry > 0 {
			var cancel context.CancelFunc
			tryCtx, cancel = context.WithTimeout(ctx, pol.perTry)
			ex.addCancel(cancel)
			req = req.WithContext(tryCtx)
		}

		var resp *http.Response
		var err error
		if isH1 && !ex.shared && attempt == 1 {
			// The exchange lends its response (and header map): it is
			// recycled only after the handler is done with them.
			resp, err = h1.RoundTripInto(req, &ex.resp)
		} else {
			resp, err = rt.RoundTrip(req)
		}
		f := classify(err, ex.ctx, tryCtx)
		report(up, pick.Addr, f, resp, ex.ctx)
		if ex.ctx.Err() != nil {
			// Route timeout or downstream gone: never retry.
			return resp, err
		}
		retriable := false
		if pol != nil {
			code, gs := 0, ""
			if resp != nil {
				code = resp.StatusCode
				if v := resp.Header["Grpc-Status"]; len(v) > 0 {
					gs = v[0]
				}
			}
			retriable = pol.retriable(f, code, gs)
		}
		if retriable && attempt < tries && body.replayable() {
			// max_retries circuit breaker: an overflowing retry is not
			// made; the response stands, flagged UO as Envoy does.
			if up.ext.state != nil {
				rel, ok := up.ext.state.Breakers.Retry()
				if !ok {
					ex.addFlag("UO")
					return finish(ex, f, resp, err)
				}
				ex.addRetryRelease(rel)
			}
			if resp != nil {
				discard(resp.Body)
			}
			if !backoff(ex.ctx, attempt, pol.backOffBase, pol.backOffMax) {
				return nil, ex.ctx.Err()
			}
			if pol.previousPriorities && pick.Endpoint != nil && pick.Endpoint.Priority < 64 {
				choice.SkipPriorities |= 1 << pick.Endpoint.Priority
			}
			continue
		}
		if retriable && attempt > 1 {
			ex.addFlag("URX")
		}
		return finish(ex, f, resp, err)
	}
}

// finish flags the attempt's failure and returns its result.
func finish(ex *exchange, f failure, resp *http.Response, err error) (*http.Response, error) {
	switch f {
	case failConnect:
		ex.addFlag("UF")
	case failTimeout:
		ex.addFlag("UT")
	}
	return resp, err
}

// pickHost chooses an endpoint, avoiding hosts already tried when the
// retry policy has previous_hosts (re-picking up to
// host_selection_retry_max_attempts times, then taking what comes).
func pickHost(up *upstream, c lb.Choice, pol *retryPolicy, tried []string) (lb.Result, bool) {
	ch, isChooser := up.picker.(lb.Chooser)
	if !isChooser {
		return up.picker.Pick()
	}
	r, ok := ch.Choose(c)
	if !ok || pol == nil || !pol.previousHosts || len(tried) == 0 {
		return r, ok
	}
	for range max(pol.hostAttempts, 1) {
		if !slices.Contains(tried, r.Addr) {
			return r, true
		}
		r.Done()
		c.HasHash = false // a hashed pick would land on the same host
		if r, ok = ch.Choose(c); !ok {
			return r, false
		}
	}
	return r, ok
}

// report feeds outlier detection with an attempt's outcome.
func report(up *upstream, addr string, f failure, resp *http.Response, routeCtx context.Context) {
	st := up.ext.state
	if st == nil {
		return
	}
	var o ups.Outcome
	switch {
	case resp != nil:
		o.Status = resp.StatusCode
	case f == failConnect:
		o.Local = ups.LocalConnectFailure
	case f == failTimeout || routeCtx.Err() == context.DeadlineExceeded:
		o.Local = ups.LocalTimeout
	case routeCtx.Err() == context.Canceled:
		return // the client went away: says nothing about the host
	default:
		o.Local = ups.LocalReset
	}
	st.Report(addr, o)
}

// classify names why an attempt failed.
func classify(err error, routeCtx, tryCtx context.Context) failure {
	if err == nil {
		return failNone
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failConnect
	}
	if tryCtx != routeCtx && tryCtx.Err() == context.DeadlineExceeded && routeCtx.Err() == nil {
		return failTimeout
	}
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		return failRefusedStream
	}
	return failReset
}

// retryRequest returns a copy of out for another attempt, with its own URL,
// headers and a fresh view of the body.
func retryRequest(out *http.Request, body *replayBody) *http.Request {
	r := *out
	u := *out.URL
	r.URL = &u
	r.Header = out.Header.Clone()
	if body != nil {
		r.Body = body.reader()
	}
	return &r
}

// backoffDelay is the wait before retry number attempt: full jitter over
// base × 2^(attempt-1), capped at max (Envoy's retry_back_off; defaults 25ms
// and 10× base), plus a millisecond.
func backoffDelay(attempt int, base, maxWait time.Duration) time.Duration {
	if base <= 0 {
		base = retryBase
	}
	if maxWait <= 0 {
		maxWait = 10 * base
	}
	ceil := min(base<<(attempt-1), maxWait)
	return rand.N(ceil) + time.Millisecond
}

// backoff waits backoffDelay or until ctx ends; false when ctx ended.
func backoff(ctx context.Context, attempt int, base, maxWait time.Duration) bool {
	t := time.NewTimer(backoffDelay(attempt, base, maxWait))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discard drains a little of a response we will not forward (so that the
// connection can be reused) and closes it.
func discard(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 4<<10)
	_ = rc.Close()
}

// replayBody makes a request body available to several attempts: small
// bodies of known length are buffered; others pass through once, and a
// retry is possible only while nothing has been read from them.
type replayBody struct {
	buf     []byte        // the whole body, when buffered
	rc      io.ReadCloser // the downstream body, when streamed
	touched atomic.Bool   // set by the transport's writer goroutine
	// pooled holds buf's backing array from replayBuffers; shared: a
	// transport that may still read it after RoundTrip saw it.
	pooled *[]byte
	shared bool
	// first is the first attempt's reader of buf, kept here so that the
	// common single attempt allocates none.
	first     replayReader
	firstUsed bool
}

// replayReader reads a buffered body; Close is a no-op.
type replayReader struct{ bytes.Reader }

func (*replayReader) Close() error { return nil }

// replayBuffers recycle replay buffers by size class: class c holds
// capacity 1 KiB << c, up to maxReplayBody. With retries on (Istio's
// default), every small request body is buffered: recycling saves an
// allocation of its size per request.
var replayBuffers [7]sync.Pool

func replayClass(n int64) int { return max(bits.Len64(uint64(n-1)), 10) - 10 }

// newReplayBody buffers rc (of length n, -1 when unknown) in b, which must
// be zero (the exchange's), and returns b.
func newReplayBody(b *replayBody, rc io.ReadCloser, n int64) (*replayBody, error) {
	if n < 0 || n > maxReplayBody {
		b.rc = rc
		return b, nil
	}
	if n == 0 {
		b.buf = []byte{}
		return b, nil
	}
	c := replayClass(n)
	p, _ := replayBuffers[c].Get().(*[]byte)
	if p == nil {
		buf := make([]byte, 0, 1<<(c+10))
		p = &buf
	}
	b.pooled, b.buf = p, (*p)[:n]
	if _, err := io.ReadFull(rc, b.buf); err != nil {
		b.release()
		return nil, err
	}
	return b, nil
}

// release recycles the buffer once no attempt can read it any more. A
// nil receiver is a no-op.
func (b *replayBody) release() {
	if b == nil || b.pooled == nil || b.shared {
		return
	}
	replayBuffers[replayClass(int64(cap(*b.pooled)))].Put(b.pooled)
	b.pooled, b.buf = nil, nil
}

// replayable reports whether another attempt can send the body. A nil
// receiver (no body) is always replayable.
func (b *replayBody) replayable() bool {
	return b == nil || b.buf != nil || !b.touched.Load()
}

func (b *replayBody) reader() io.ReadCloser {
	if b.buf != nil {
		if !b.firstUsed {
			b.firstUsed = true
			b.first.Reset(b.buf)
			return &b.first
		}
		return &replayReader{Reader: *bytes.NewReader(b.buf)}
	}
	return onceBody{b}
}

func (b *replayBody) getBody() (io.ReadCloser, error) { return b.reader(), nil }

// onceBody is the streamed body as one attempt sees it. Close is a no-op:
// the transport closes bodies even of attempts that failed before reading,
// and the server closes the real body when the handler returns.
type onceBody struct{ b *replayBody }

func (o onceBody) Read(p []byte) (int, error) {
	o.b.touched.Store(true)
	return o.b.rc.Read(p)
}

func (o onceBody) Close() error { return nil }
