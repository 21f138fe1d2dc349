package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLiveReroute rewrites echo's VirtualService ten times under a steady
// request stream, alternating 100% v1 and 100% v2. No request may fail, and
// once a change has been observed no answer may come from the old subset.
func TestLiveReroute(t *testing.T) {
	m := startMesh(t, meshOptions{Subset: "v1"})
	l := startLoad(t, m, "echo-v1")
	l.waitSeen(t, 0, loadWorkers)
	// Each sidecar unmaps its start-up pages once its first config serves
	// (--release-start-pages): the load must not notice.
	for name, p := range m.proxies {
		waitFor(t, name+" releasing its start-up pages", readyTimeout, func() error {
			if !strings.Contains(p.out.String(), "releasing start-up pages") {
				return errors.New("not logged yet")
			}
			return nil
		}, p)
	}
	stable := map[int]string{} // phase id → the workload that phase must see
	for i := range 10 {
		subset := []string{"v2", "v1"}[i%2]
		id := l.converge(t, m, "echo-"+subset, func() {
			writeFile(t, m.dir, "vs-echo.yaml", virtualServiceYAML(subset))
		})
		stable[id] = "echo-" + subset
	}
	l.check(t)
	for name, p := range m.proxies {
		if strings.Contains(p.out.String(), "start-up pages not released") {
			t.Errorf("%s could not release its start-up pages (see its log)", name)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, want := range stable {
		if l.seen[id][want] == 0 {
			t.Errorf("edit phase %d: no answers from %s (seen %v)", id, want, l.seen[id])
		}
	}
}

// TestStateOfTheWorld runs traffic and one route change with every proxy on
// state-of-the-world ADS instead of delta.
func TestStateOfTheWorld(t *testing.T) {
	m := startMesh(t, meshOptions{Subset: "v1", SotW: true})
	l := startLoad(t, m, "echo-v1")
	l.waitSeen(t, 0, loadWorkers)
	l.converge(t, m, "echo-v2", func() {
		writeFile(t, m.dir, "vs-echo.yaml", virtualServiceYAML("v2"))
	})
	l.check(t)
}

// TestControlPlaneDeath kills trellisd with SIGKILL under load: the proxies
// keep serving their last config, then reconnect to a trellisd restarted on
// the same address and follow its config again.
func TestControlPlaneDeath(t *testing.T) {
	const outage = 3 * time.Second
	m := startMesh(t, meshOptions{Subset: "v1"})
	l := startLoad(t, m, "echo-v1")
	l.waitSeen(t, 0, loadWorkers)

	m.trellisd.kill(t)
	killed := time.Now()
	t.Log("trellisd killed")
	// The outage lasts for at least 200 requests and long enough for every
	// proxy to see its stream break and retry with backoff a few times.
	proxies := []*proc{m.proxies["client"], m.proxies["echo-v1"], m.proxies["echo-v2"]}
	l.waitOK(t, 200, proxies...)
	waitFor(t, "an outage of "+outage.String(), 2*outage, func() error {
		if time.Since(killed) < outage {
			return errNotYet
		}
		return nil
	}, proxies...)
	// Like Envoy, a proxy that has lost its control plane stays ready.
	for _, ip := range []string{m.clientIP, m.bl.ip(hostEchoV1), m.bl.ip(hostEchoV2)} {
		if err := ready("http://" + ip + ":15021/healthz/ready")(); err != nil {
			t.Errorf("proxy %s during the outage: %v", ip, err)
		}
	}

	m.startTrellisd()
	t.Log("trellisd restarted")
	waitFor(t, "every proxy listed in /debug/syncz", readyTimeout, func() error {
		body, err := httpGet(context.Background(), "http://"+m.monAddr+"/debug/syncz")
		if err != nil {
			return err
		}
		for _, w := range []string{"client", "echo-v1", "echo-v2"} {
			if !strings.Contains(body, w+".default") {
				return fmt.Errorf("%s.default not in /debug/syncz:\n%s", w, tail(body, 2000))
			}
		}
		return nil
	}, m.all()...)

	// The reconnected proxies follow the new trellisd's config.
	l.converge(t, m, "echo-v2", func() {
		writeFile(t, m.dir, "vs-echo.yaml", virtualServiceYAML("v2"))
	})
	l.check(t)
}

// brokenVirtualService routes to v2 but has a weight of the wrong type; it
// must be rejected, naming file, line and field, and the previous version
// of VirtualService default/echo must stay in force.
const brokenVirtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - ` + echoHost + `
  http:
  - route:
    - destination:
        host: ` + echoHost + `
        subset: v2
      weight: heavy
`

// TestBadConfig writes invalid files while traffic flows: trellisd keeps the
// last good config in force and logs where the problem is.
func TestBadConfig(t *testing.T) {
	m := startMesh(t, meshOptions{Subset: "v1"})
	l := startLoad(t, m, "echo-v1")
	l.waitSeen(t, 0, loadWorkers)

	t.Run("wrong field type", func(t *testing.T) {
		writeFile(t, m.dir, "vs-echo.yaml", brokenVirtualService)
		line := lineOf(brokenVirtualService, "weight: heavy")
		waitLog(t, m.trellisd, fmt.Sprintf("vs-echo.yaml:%d", line), "spec.http[0].route[0].weight")
		l.waitOK(t, 100, m.all()...)
	})

	t.Run("not yaml", func(t *testing.T) {
		writeFile(t, m.dir, "garbage.yaml", "kind: VirtualService\nmetadata: {name: [unclosed\n")
		waitLog(t, m.trellisd, "garbage.yaml")
		l.waitOK(t, 100, m.all()...)
	})

	// A valid edit still takes effect while another file is broken.
	t.Run("fix", func(t *testing.T) {
		l.converge(t, m, "echo-v2", func() {
			writeFile(t, m.dir, "vs-echo.yaml", virtualServiceYAML("v2"))
		})
	})
	l.check(t)
}

// lineOf returns the 1-based line of the first line of s containing substr.
func lineOf(s, substr string) int {
	for i, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			return i + 1
		}
	}
	return 0
}

// waitLog waits until p's output has one line containing every one of want.
func waitLog(t *testing.T, p *proc, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to log %q", p.name, want), 15*time.Second, func() error {
		for line := range strings.Lines(p.out.String()) {
			if containsAll(line, want) {
				return nil
			}
		}
		return fmt.Errorf("no line with all of %q", want)
	}, p)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
