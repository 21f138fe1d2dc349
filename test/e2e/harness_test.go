package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var binFlag = flag.String("e2e.bin", "", "directory holding prebuilt trellisd and trellis-proxy (default: build them)")

// bins builds cmd/trellisd and cmd/trellis-proxy once per test binary, on
// first use, into a directory TestMain removes.
var bins struct {
	once sync.Once
	dir  string // where the binaries are
	tmp  string // build directory to remove; empty with -e2e.bin
	err  error
}

// Bounds for polling. Generous because the machine is shared; polls return
// as soon as their condition holds.
const (
	readyTimeout = 30 * time.Second
	pollInterval = 20 * time.Millisecond
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	code := m.Run()
	if bins.tmp != "" {
		os.RemoveAll(bins.tmp)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binDir returns the directory with trellisd and trellis-proxy, building
// them on the first call.
func binDir(t *testing.T) string {
	t.Helper()
	bins.once.Do(func() {
		if *binFlag != "" {
			bins.dir = *binFlag
			return
		}
		dir, err := os.MkdirTemp("", "trellis-e2e-bin-")
		if err != nil {
			bins.err = fmt.Errorf("build: %w", err)
			return
		}
		bins.tmp = dir
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"github.com/trellis-mesh/trellis/cmd/trellisd",
			"github.com/trellis-mesh/trellis/cmd/trellis-proxy")
		cmd.Dir = filepath.Join("..", "..") // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("build: go build ./cmd/trellisd ./cmd/trellis-proxy: %w\n%s", err, out)
			return
		}
		bins.dir = dir
		t.Logf("built trellisd and trellis-proxy in %v", time.Since(start).Round(time.Millisecond))
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.dir
}

// block is one /24 of loopback addresses, 127.A.B.0/24, owned by one mesh.
type block struct{ a, b int }

func (bl block) ip(host int) string { return fmt.Sprintf("127.%d.%d.%d", bl.a, bl.b, host) }

var blocks struct {
	sync.Mutex
	a, next int
}

// newBlock picks a /24 no other process is using: A is random per test run
// (away from 127.0.x.x where the demo runs), B counts up per mesh, and a block
// whose control-plane ports are taken is skipped.
func newBlock(t *testing.T) block {
	t.Helper()
	blocks.Lock()
	defer blocks.Unlock()
	if blocks.a == 0 {
		blocks.a = 64 + (os.Getpid()+rand.IntN(1<<16))%190 // 64..253
		blocks.next = 1 + rand.IntN(200)
	}
	for range 50 {
		bl := block{a: blocks.a, b: blocks.next}
		blocks.next = blocks.next%254 + 1
		if portsFree(bl.ip(1)+":15010", bl.ip(1)+":15014", bl.ip(10)+":15080", bl.ip(11)+":15000") {
			return bl
		}
	}
	t.Fatal("no free loopback block")
	return block{}
}

func portsFree(addrs ...string) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return false
		}
		ls = append(ls, l)
	}
	return true
}

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one child process. Its waiter goroutine ends when the process does;
// stop (registered with t.Cleanup by startProc) reaps it.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// startProc starts binary bin from binDir. The process is killed and its
// output logged (on failure) when the test ends.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir(t), bin), args...)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = cleanEnv()
	// Pdeathsig: the child dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Logf("started %s (pid %d): %s %s", name, cmd.Process.Pid, bin, strings.Join(args, " "))
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(out.String(), 64<<10))
		}
	})
	return p
}

// cleanEnv is the test's environment without proxy settings, which would
// otherwise redirect the children's HTTP and gRPC clients.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "GRPC_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: not reaped 10s after SIGKILL", p.name)
	}
}

// stop asks the process to exit with SIGTERM, then kills it after a bound.
func (p *proc) stop(t *testing.T) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Logf("%s: still running 5s after SIGTERM; killing", p.name)
		p.kill(t)
	}
}

// waitFor polls cond every pollInterval until it returns nil or timeout
// passes, failing the test with the last error. Processes in watch are
// checked on every round so that a crash fails fast instead of timing out.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error, watch ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		for _, p := range watch {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited: %v", what, p.name, p.err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up after %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval) // polling interval, not synchronisation
	}
}

// probeClient is for readiness and metrics endpoints; it never uses a proxy.
var probeClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// httpGet fetches url and returns the body, or an error unless the status
// is 200.
func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s: %s", url, resp.Status, tail(string(body), 300))
	}
	return string(body), nil
}

func ready(url string) func() error {
	return func() error {
		_, err := httpGet(context.Background(), url)
		return err
	}
}

// writeFile writes a config file atomically (temporary hidden file, then
// rename) so that a watcher never reads half a file.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

var errNotYet = errors.New("not yet")
