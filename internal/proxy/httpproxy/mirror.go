package httpproxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
)

const (
	// maxMirrorBody is the largest request body copied to mirrors; a
	// request with a larger body is not mirrored.
	maxMirrorBody = 64 << 10
	// mirrorTimeout bounds a mirrored request whose route has no timeout.
	mirrorTimeout            = 30 * time.Second
	defaultMirrorConcurrency = 64
)

// mirrors sends fire-and-forget copies of requests (request_mirror_policies).
// A copy never delays or fails the original: it runs on its own goroutine,
// bounded in number (copies beyond the bound are dropped and counted), with
// its own timeout, and its response is discarded. Close cancels the copies
// in flight and waits for them.
type mirrors struct {
	log     *slog.Logger
	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex // guards closed against wg.Add after Close
	closed  bool
	sent    atomic.Int64
	dropped atomic.Int64
}

func newMirrors(n int, log *slog.Logger) *mirrors {
	if n <= 0 {
		n = defaultMirrorConcurrency
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &mirrors{log: log.With("component", "httpproxy"), sem: make(chan struct{}, n), ctx: ctx, cancel: cancel}
}

// Close stops in-flight copies and waits for their goroutines.
func (m *mirrors) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// mirrorJob is one copy to send.
type mirrorJob struct {
	up      *upstream
	method  string
	url     string // path and query
	host    string
	header  http.Header
	body    []byte
	timeout time.Duration
}

// launch starts job unless the bound is reached or m is closed.
func (m *mirrors) launch(job mirrorJob) {
	select {
	case m.sem <- struct{}{}:
	default:
		m.dropped.Add(1)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.sem
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer func() {
			<-m.sem
			m.wg.Done()
		}()
		m.send(job)
	}()
}

func (m *mirrors) send(job mirrorJob) {
	ctx, cancel := context.WithTimeout(m.ctx, job.timeout)
	defer cancel()
	pick, ok := job.up.ext.state.Choose(lb.Choice{})
	if !ok {
		return
	}
	defer pick.Done()
	var body io.Reader
	if job.body != nil {
		body = bytes.NewReader(job.body)
	}
	req, err := http.NewRequestWithContext(ctx, job.method, "http://"+pick.Addr+job.url, body)
	if err != nil {
		return
	}
	req.Header = job.header
	req.Host = job.host
	rt := job.up.transportForEndpoint(pick.Endpoint, false, false)
	resp, err := rt.RoundTrip(req)
	m.sent.Add(1)
	if err != nil {
		m.log.Debug("mirror failed", "cluster", job.up.name, "upstream", pick.Addr, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

// shadowHost appends "-shadow" to the host part of an authority, before
// any port, as Envoy names mirrored requests.
func shadowHost(host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h+"-shadow", port)
	}
	return host + "-shadow"
}

// startMirrors sends the copies the route's mirror policies ask for. A
// small body of known length is read now and shared with the original;
// other bodies are copied as the original reads them (up to
// maxMirrorBody) and the copies leave when it has read all of it.
func (h *Handler) startMirrors(ex *exchange, r *http.Request) {
	fwd := ex.route.rt.Forward
	var jobs []mirrorJob
	for _, mp := range fwd.Mirrors {
		if mp.PerMillion < 1_000_000 && rand.Uint32N(1_000_000) >= mp.PerMillion {
			continue
		}
		up := ex.st.cfg.clusters[mp.Cluster]
		if up == nil || up.ext.state == nil {
			continue
		}
		host := r.Host
		if !mp.KeepHost {
			host = shadowHost(host)
		}
		hd := r.Header.Clone()
		for _, k := range hopHeaders {
			delete(hd, k)
		}
		timeout := ex.route.timeout
		if timeout <= 0 {
			timeout = mirrorTimeout
		}
		jobs = append(jobs, mirrorJob{up: up, method: r.Method, url: r.URL.RequestURI(), host: host, header: hd, timeout: timeout})
	}
	if len(jobs) == 0 {
		return
	}
	m := jobs[0].up.ext.mirrors
	if r.Body == nil || r.Body == http.NoBody {
		for _, j := range jobs {
			m.launch(j)
		}
		return
	}
	if r.ContentLength >= 0 && r.ContentLength <= maxMirrorBody {
		buf, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
		if err != nil || int64(len(buf)) != r.ContentLength {
			return // the original will fail on its own
		}
		r.Body = io.NopCloser(bytes.NewReader(buf))
		for _, j := range jobs {
			j.body = buf
			m.launch(j)
		}
		return
	}
	r.Body = &teeBody{rc: r.Body, done: func(buf []byte) {
		for _, j := range jobs {
			j.body = buf
			m.launch(j)
		}
	}}
}

// hopHeaders are not copied to mirrors (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// teeBody copies what the original request reads, up to maxMirrorBody, and
// calls done with the copy at EOF. A body larger than the cap, or one not
// read to the end, is not mirrored.
type teeBody struct {
	rc   io.ReadCloser
	buf  []byte
	over bool
	done func([]byte)
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if !t.over {
		if len(t.buf)+n > maxMirrorBody {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.over && t.done != nil {
		done := t.done
		t.done = nil
		done(t.buf)
	}
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }
