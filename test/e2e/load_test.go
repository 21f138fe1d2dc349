package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// phase is a stretch of a load run. A stable phase has a target: every
// request that starts and ends within it must be answered by that workload.
// A transitional phase (target "") accepts any answer, but no failures.
type phase struct {
	id     int
	target string
}

// load is a steady, bounded stream of HTTP requests from a few workers
// through the client sidecar's egress listener. It is owned by the test that
// starts it: stop (also run by t.Cleanup) cancels the workers and waits.
type load struct {
	c      *http.Client
	url    string
	phase  atomic.Pointer[phase]
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ok       int
	failed   int
	failures []string               // the first few failures
	stale    []string               // answers from the wrong workload in a stable phase
	seen     map[int]map[string]int // phase id → answering workload → count
}

// Workers pace themselves so that a 2-core machine keeps room for the
// processes under test: workers × 1/interval requests per second at most.
const (
	loadWorkers  = 4
	loadInterval = 5 * time.Millisecond
)

// startLoad starts the workers in a stable phase targeting target ("" for a
// transitional one).
func startLoad(t *testing.T, m *mesh, target string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{c: m.egressClient(t), url: echoURL(portHTTP, "/load"), cancel: cancel, seen: map[int]map[string]int{}}
	l.phase.Store(&phase{id: 0, target: target})
	for range loadWorkers {
		l.wg.Go(func() { l.work(ctx) })
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) work(ctx context.Context) {
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p0 := l.phase.Load()
		r, err := getEcho(ctx, l.c, l.url)
		if ctx.Err() != nil {
			return // cancelled mid-request: not a result
		}
		p1 := l.phase.Load()
		l.mu.Lock()
		switch {
		case err != nil:
			l.failed++
			if len(l.failures) < 10 {
				l.failures = append(l.failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			}
		default:
			l.ok++
			if p0 == p1 {
				if l.seen[p1.id] == nil {
					l.seen[p1.id] = map[string]int{}
				}
				l.seen[p1.id][r.Name]++
				if p1.target != "" && r.Name != p1.target && len(l.stale) < 10 {
					l.stale = append(l.stale, fmt.Sprintf("phase %d: answered by %s, want %s", p1.id, r.Name, p1.target))
				}
			}
		}
		l.mu.Unlock()
	}
}

// stop cancels the workers and waits for them; it may be called twice.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// setPhase starts a new phase and returns its id.
func (l *load) setPhase(target string) int {
	p := &phase{id: l.phase.Load().id + 1, target: target}
	l.phase.Store(p)
	return p.id
}

func (l *load) okCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// waitOK waits until n more requests have succeeded.
func (l *load) waitOK(t *testing.T, n int, watch ...*proc) {
	t.Helper()
	start := l.okCount()
	waitFor(t, fmt.Sprintf("%d more successful requests", n), 30*time.Second, func() error {
		if got := l.okCount() - start; got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	}, watch...)
}

// waitSeen waits until n requests started and ended within phase id.
func (l *load) waitSeen(t *testing.T, id, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d requests in phase %d", n, id), 30*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		total := 0
		for _, c := range l.seen[id] {
			total += c
		}
		if total < n {
			return fmt.Errorf("%d so far", total)
		}
		return nil
	})
}

// check stops the load and fails the test on any failed or stale request.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d requests succeeded, %d failed", l.ok, l.failed)
	if l.failed > 0 {
		t.Errorf("%d of %d requests failed; first failures:\n%v", l.failed, l.ok+l.failed, l.failures)
	}
	if len(l.stale) > 0 {
		t.Errorf("answers from the wrong workload after the route had changed:\n%v", l.stale)
	}
}

// converge switches the load to a transitional phase, runs edit, waits until
// probes through the client sidecar are answered only by target, then starts
// a stable phase for target, waits until the workers have seen it and
// returns the phase's id.
func (l *load) converge(t *testing.T, m *mesh, target string, edit func()) int {
	t.Helper()
	l.setPhase("")
	edit()
	waitRoute(t, m, target)
	id := l.setPhase(target)
	l.waitSeen(t, id, 2*loadWorkers)
	return id
}

// waitRoute waits until several consecutive requests through the client
// sidecar are answered by target.
func waitRoute(t *testing.T, m *mesh, target string) {
	t.Helper()
	c := m.egressClient(t)
	streak := 0
	waitFor(t, "traffic to "+target, 20*time.Second, func() error {
		r, err := getEcho(context.Background(), c, echoURL(portHTTP, "/probe"))
		switch {
		case err != nil:
			streak = 0
			return err
		case r.Name != target:
			streak = 0
			return fmt.Errorf("answered by %s", r.Name)
		}
		if streak++; streak < 5 {
			return errNotYet
		}
		return nil
	}, m.all()...)
}
