package demo

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	fakeOnce sync.Once
	fakeDir  string
	fakeErr  error
)

// fakeBins builds testdata/fakemesh once and installs it as trellisd and
// trellis-proxy in a directory shared by the tests of this package.
func fakeBins(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "demo-fakemesh-")
		if err != nil {
			fakeErr = err
			return
		}
		goBuild(t, dir, "./internal/demo/testdata/fakemesh")
		for _, name := range []string{"trellisd", "trellis-proxy"} {
			if err := os.Link(filepath.Join(dir, "fakemesh"), filepath.Join(dir, name)); err != nil {
				fakeErr = err
				return
			}
		}
		fakeDir = dir
	})
	if fakeErr != nil {
		t.Fatalf("fake binaries: %v", fakeErr)
	}
	if fakeDir == "" {
		t.Fatal("fake binaries: an earlier build failed")
	}
	return fakeDir
}

// run is one in-process demo run.
type run struct {
	dir    string
	out    *output
	cancel context.CancelFunc
	done   chan error
}

// skipIfDemoRunning skips a test that runs the demo on its fixed
// addresses (docs/local-mesh.md) when they are taken, most likely by a
// demo the user left running (`make demo` in another terminal).
func skipIfDemoRunning(t *testing.T) {
	t.Helper()
	if err := checkFree(); err != nil {
		t.Skipf("%v: stop the running demo to run this test", err)
	}
}

func startRun(t *testing.T, o Options) *run {
	t.Helper()
	skipIfDemoRunning(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{dir: o.Dir, out: newOutput(), cancel: cancel, done: make(chan error, 1)}
	o.Out = r.out
	if o.Self == "" {
		o.Self = os.Args[0]
	}
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancel")
		}
	})
	return r
}

// waitReady waits for the ready line, failing if Run returns first.
func (r *run) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-r.out.ready:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run returned before ready: %v\n%s", err, r.out)
	case <-time.After(90 * time.Second):
		t.Fatalf("no ready line after 90s:\n%s", r.out)
	}
}

// wait returns Run's result, failing after a bound.
func (r *run) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s")
		return nil
	}
}

func assertNoChildren(t *testing.T) {
	t.Helper()
	if kids := childrenOf(os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left running: %v", kids)
	}
}

// TestRun runs the demo twice in a row on fake control plane and proxies:
// everything starts, the page answers through the "gateway", and a cancel
// leaves nothing running.
func TestRun(t *testing.T) {
	bins := fakeBins(t)
	for i := range 2 {
		dir := t.TempDir()
		r := startRun(t, Options{Dir: dir, BinDir: bins, ReadyTimeout: 60 * time.Second})
		r.waitReady(t)

		pids := summaryPIDs(t, r.out.String())
		if len(pids) != 14 {
			t.Fatalf("run %d: summary lists %d processes, want 14 (trellisd, 6 apps, 7 proxies):\n%s", i, len(pids), r.out)
		}
		code, body, err := fetch(context.Background(), ProductPageURL)
		if err != nil || code != 200 || !reviewsVersion.MatchString(body) {
			t.Fatalf("run %d: GET %s = %d, %v:\n%s", i, ProductPageURL, code, err, body)
		}
		for _, p := range []string{"config/gateway.yaml", "extras/virtual-service-reviews-v3.yaml", "logs/trellisd.log",
			"logs/app-reviews-v3.log", "logs/proxy-istio-ingressgateway.log"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "config", "extras")); err == nil {
			t.Errorf("run %d: extras written into config/", i)
		}

		r.cancel()
		if err := r.wait(t); err != nil {
			t.Fatalf("run %d: Run after cancel = %v, want nil", i, err)
		}
		for name, pid := range pids {
			if procStart(pid) != "" {
				t.Errorf("run %d: %s (pid %d) still running", i, name, pid)
			}
		}
		assertNoChildren(t)
	}
}

func TestRunChildDies(t *testing.T) {
	bins := fakeBins(t)
	dir := t.TempDir()
	r := startRun(t, Options{Dir: dir, BinDir: bins, ReadyTimeout: 60 * time.Second})
	r.waitReady(t)
	// The fake trellisd exits with status 3 when it sees this file.
	if err := os.WriteFile(filepath.Join(dir, "config", "exit-now"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "trellisd exited") || !strings.Contains(err.Error(), "trellisd.log") {
		t.Fatalf("Run = %v, want an error naming trellisd and its log", err)
	}
	assertNoChildren(t)
}

func TestRunNotReady(t *testing.T) {
	bins := fakeBins(t)
	t.Setenv("FAKEMESH_NEVER_READY", "default/details-v1")
	r := startRun(t, Options{Dir: t.TempDir(), BinDir: bins, ReadyTimeout: 5 * time.Second})
	err := r.wait(t)
	if !errors.Is(err, errNotReady) {
		t.Fatalf("Run = %v, want not ready", err)
	}
	for _, want := range []string{"proxy default/details-v1", "proxy-details-v1.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	assertNoChildren(t)
}

func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) Options
		wantErr string
	}{
		{name: "no dir", setup: func(*testing.T) Options { return Options{} }, wantErr: "Dir is required"},
		{name: "missing binaries", setup: func(t *testing.T) Options {
			return Options{Dir: t.TempDir(), BinDir: t.TempDir()}
		}, wantErr: "trellisd not found"},
		{name: "gateway address taken", setup: func(t *testing.T) Options {
			l, err := net.Listen("tcp", GatewayAddr)
			if err != nil {
				t.Skipf("cannot hold %s: %v", GatewayAddr, err)
			}
			t.Cleanup(func() { l.Close() })
			return Options{Dir: t.TempDir(), BinDir: fakeBins(t)}
		}, wantErr: GatewayAddr + " is in use"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.setup(t))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.wantErr)
			}
			assertNoChildren(t)
		})
	}
}
