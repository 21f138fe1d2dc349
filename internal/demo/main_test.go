package demo

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/internal/demo/bookinfo"
)

// TestMain doubles as the Bookinfo app: the orchestrator under test runs
// Options.Self (this test binary) as `demo app ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "demo" && os.Args[2] == "app" {
		if err := runApp(os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "demo app:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runApp mirrors cmd/trellis's `demo app`.
func runApp(args []string) error {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	name := fs.String("name", "", "")
	version := fs.String("version", "v1", "")
	listen := fs.String("listen", "", "")
	proxy := fs.String("proxy", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*proxy)
	if err != nil {
		return err
	}
	h, err := bookinfo.NewHandler(bookinfo.Options{Name: *name, Version: *version, Proxy: u})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return bookinfo.Serve(ctx, lis, h)
}

// output collects what a demo prints and signals its ready line. Safe for
// concurrent use.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func newOutput() *output { return &output{ready: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if strings.Contains(o.buf.String(), "\n"+ReadyPrefix) {
		o.once.Do(func() { close(o.ready) })
	}
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// summaryRow matches a row of the summary table: component, then PID.
var summaryRow = regexp.MustCompile(`^(trellisd|app \S+|proxy \S+)\s+(\d+)\s`)

// summaryPIDs reads the children's PIDs from the summary table.
func summaryPIDs(t *testing.T, out string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := summaryRow.FindStringSubmatch(sc.Text()); m != nil {
			pid, err := strconv.Atoi(m[2])
			if err != nil {
				t.Fatal(err)
			}
			pids[m[1]] = pid
		}
	}
	return pids
}

// procStart is a process's start time in clock ticks (field 22 of
// /proc/PID/stat), to tell a process from a later one reusing its PID.
// It returns "" when the process does not exist or is a zombie.
func procStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields after it don't.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19]
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// fetch GETs url with a client that bypasses any proxy and keeps no
// connections.
func fetch(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

// reviewsVersion is what the product page says served the reviews.
var reviewsVersion = regexp.MustCompile(`reviews-v[0-9]`)

// goBuild builds the packages into dir with the go tool of the test run.
func goBuild(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command(gobin, args...)
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

// moduleRoot is the repository root, two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}
