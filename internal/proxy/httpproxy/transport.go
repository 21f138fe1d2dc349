package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// maxReplayBody is the largest request body buffered so that the
	// request can be retried; larger or unknown-length bodies are streamed
	// and retried only if the failed attempt read none of them.
	maxReplayBody = 64 << 10
	// Envoy's default retry back-off: 25ms base, 10× cap, full jitter.
	retryBase = 25 * time.Millisecond
	retryMax  = 250 * time.Millisecond
)

var errNoHealthy = errors.New("httpproxy: no healthy upstream")

// roundTripper sends one proxied request upstream: it picks an endpoint per
// attempt and retries per the route's policy. The request's exchange is in
// its context.
type roundTripper struct{}

var _ http.RoundTripper = roundTripper{}

func (roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	ctx := out.Context()
	ex := ctx.Value(exchangeKey{}).(*exchange)
	up := ex.dest.up
	rt := up.transportFor(ex.downH2, ex.upgrade)
	pol := ex.route.retry
	tries := 1
	var body *replayBody
	if pol != nil {
		tries += int(pol.attempts)
		if out.Body != nil && out.Body != http.NoBody && tries > 1 {
			var err error
			if body, err = newReplayBody(out.Body, out.ContentLength); err != nil {
				return nil, err
			}
			out.Body = body.reader()
			if body.buf != nil {
				out.GetBody = body.getBody
			}
		}
	}
	for attempt := 1; ; attempt++ {
		pick, ok := up.picker.Pick()
		if !ok {
			ex.addFlag("UH")
			return nil, errNoHealthy
		}
		ex.picked.Done()
		ex.picked = pick
		ex.info.Upstream = pick.Addr
		ex.info.Attempts = attempt

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

		resp, err := rt.RoundTrip(req)
		f := classify(err, ex.ctx, tryCtx)
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
			if resp != nil {
				discard(resp.Body)
			}
			if !backoff(ex.ctx, attempt) {
				return nil, ex.ctx.Err()
			}
			continue
		}
		if retriable && attempt > 1 {
			ex.addFlag("URX")
		}
		switch f {
		case failConnect:
			ex.addFlag("UF")
		case failTimeout:
			ex.addFlag("UT")
		}
		return resp, err
	}
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

func backoff(ctx context.Context, attempt int) bool {
	ceil := min(retryBase<<(attempt-1), retryMax)
	t := time.NewTimer(rand.N(ceil) + time.Millisecond)
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
}

func newReplayBody(rc io.ReadCloser, n int64) (*replayBody, error) {
	if n < 0 || n > maxReplayBody {
		return &replayBody{rc: rc}, nil
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	return &replayBody{buf: buf}, nil
}

// replayable reports whether another attempt can send the body. A nil
// receiver (no body) is always replayable.
func (b *replayBody) replayable() bool {
	return b == nil || b.buf != nil || !b.touched.Load()
}

func (b *replayBody) reader() io.ReadCloser {
	if b.buf != nil {
		return io.NopCloser(bytes.NewReader(b.buf))
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
