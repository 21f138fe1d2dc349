package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoEndToEnd runs `trellis demo` as `make demo` does, with the real
// trellisd and trellis-proxy built from this tree: the page answers through
// the gateway, a VirtualService dropped into the config directory moves every
// reviews call to v3, and SIGINT leaves no process behind.
func TestDemoEndToEnd(t *testing.T) {
	skipIfDemoRunning(t)
	bin := t.TempDir()
	goBuild(t, bin, "./cmd/...")
	for _, name := range []string{"trellis", "trellisd", "trellis-proxy"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("go build ./cmd/... made no %s: %v", name, err)
		}
	}
	dir := t.TempDir()
	out, errOut := newOutput(), newOutput()
	cmd := exec.Command(filepath.Join(bin, "trellis"), "demo", "--dir", dir)
	cmd.Stdout = out
	cmd.Stderr = errOut
	cmd.SysProcAttr = sysProcAttr() // the demo dies with the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	dump := func() {
		t.Logf("trellis demo stdout:\n%s\nstderr:\n%s", out, errOut)
		logTails(t, filepath.Join(dir, "logs"))
	}

	// 1: ready.
	select {
	case <-out.ready:
	case err := <-exited:
		exited <- err
		dump()
		t.Fatalf("trellis demo exited before ready: %v", err)
	case <-time.After(120 * time.Second):
		dump()
		t.Fatal("trellis demo: no ready line within 120s")
	}
	pids := summaryPIDs(t, out.String())
	if len(pids) != 14 {
		dump()
		t.Fatalf("summary lists %d processes, want 14", len(pids))
	}
	starts := map[int]string{}
	for _, pid := range pids {
		starts[pid] = procStart(pid)
	}

	// 2: the page, through the gateway.
	ctx := context.Background()
	code, body, err := fetch(ctx, ProductPageURL)
	if err != nil || code != 200 || !reviewsVersion.MatchString(body) {
		dump()
		t.Fatalf("GET %s = %d, %v; want 200 naming a reviews version:\n%s", ProductPageURL, code, err, body)
	}

	// 3: all reviews to v3, live.
	vs, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "bookinfo", "extras", "virtual-service-reviews-v3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "virtual-service-reviews-v3.yaml"), vs, 0o644); err != nil {
		t.Fatal(err)
	}
	const want = 10
	deadline := time.Now().Add(60 * time.Second)
	var streak int
	var last string
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for streak < want {
		if time.Now().After(deadline) {
			dump()
			t.Fatalf("after 60s, %d consecutive pages from reviews-v3, want %d; last: %s", streak, want, last)
		}
		code, body, err := fetch(ctx, ProductPageURL)
		versions := reviewsVersion.FindAllString(body, -1)
		last = strings.Join(versions, ",")
		if err != nil || code != 200 || len(versions) != 1 || versions[0] != "reviews-v3" {
			streak = 0
			<-tick.C
			continue
		}
		streak++
	}

	// 4: SIGINT stops everything.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			dump()
			t.Errorf("trellis demo after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		dump()
		t.Fatal("trellis demo still running 30s after SIGINT")
	}
	for name, pid := range pids {
		if s := procStart(pid); s != "" && s == starts[pid] {
			t.Errorf("%s (pid %d) still running after the demo exited", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// logTails logs the last lines of every log in dir.
func logTails(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("== %s\n%s", filepath.Base(l), strings.Join(lines, "\n"))
	}
}
