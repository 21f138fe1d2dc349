package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trellis-mesh/trellis/bench/internal/pki"
	"github.com/trellis-mesh/trellis/bench/internal/procfs"
	"github.com/trellis-mesh/trellis/bench/internal/report"
)

// scenarios in the order they run.
var scenarios = []string{"latency", "saturation", "grpc", "tcp", "memory", "controlplane", "gobench"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "trellis-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		root     = flag.String("root", "", "repository root (default: git rev-parse --show-toplevel)")
		binDir   = flag.String("bin", "", "directory with prebuilt trellisd and trellis-proxy (default: build them)")
		quick    = flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "smoke run: short durations, small sizes (BENCH_QUICK=1)")
		duration = flag.Duration("duration", 0, "length of each measured load run (BENCH_DURATION; default 20s, 2s quick)")
		rounds   = flag.Int("rounds", envInt("BENCH_ROUNDS"), "rounds of the latency scenario, each row their median (BENCH_ROUNDS; default 3, 1 quick)")
		only     = flag.String("only", os.Getenv("BENCH_ONLY"), "comma-separated scenarios to run: "+strings.Join(scenarios, ","))
		mtls     = flag.Bool("mtls", true, "mutual TLS between the two hops (Trellis automatic mTLS, HAProxy/nginx TLS); false: plain text everywhere")
		verbose  = flag.Bool("v", false, "debug logging")
	)
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "bench")

	if *duration == 0 {
		if s := os.Getenv("BENCH_DURATION"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("BENCH_DURATION: %w", err)
			}
			*duration = d
		}
	}
	selected := scenarios
	if *only != "" {
		selected = strings.Split(*only, ",")
		for _, s := range selected {
			if !slices.Contains(scenarios, s) {
				return fmt.Errorf("-only: unknown scenario %q (have %s)", s, strings.Join(scenarios, ","))
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := newEnv(ctx, log, envOptions{root: *root, binDir: *binDir, quick: *quick, duration: *duration, mtls: *mtls, rounds: *rounds})
	if err != nil {
		return err
	}
	defer e.Close()

	rep := &report.Report{Machine: e.machine(ctx), Quick: e.quick, LoadDuration: e.loadDur}
	if e.quick {
		rep.Note("smoke run (BENCH_QUICK=1): durations and sizes are cut down; use the numbers to test the harness, not the mesh")
	}
	for _, n := range e.notes {
		rep.Note("%s", n)
	}
	runners := map[string]func(context.Context, *env, *report.Report){
		"latency": runLatency, "saturation": runSaturation, "grpc": runGRPC, "tcp": runTCP,
		"memory": runMemory, "controlplane": runControlPlane, "gobench": runGoBench,
	}
	for _, name := range scenarios {
		if !slices.Contains(selected, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		log.Info("scenario", "name", name)
		runners[name](ctx, e, rep)
		log.Info("scenario done", "name", name, "took", time.Since(start).Round(time.Millisecond))
	}
	rep.Checks = checks(rep)

	if err := e.writeResults(rep); err != nil {
		return err
	}
	md := &strings.Builder{}
	if err := rep.WriteMarkdown(md); err != nil {
		return err
	}
	fmt.Println(md.String())
	return ctx.Err()
}

// envOptions are run-wide choices from flags.
type envOptions struct {
	root, binDir string
	quick        bool
	duration     time.Duration
	mtls         bool
	rounds       int // 0: the default
}

// env is everything scenarios share: tools, directories, durations.
type env struct {
	log     *slog.Logger
	root    string // repository root
	runDir  string // bench/.run/STAMP: configs, logs, fortio JSON
	results string // bench/results
	stamp   string
	quick   bool
	mtls    bool

	loadDur time.Duration // each measured load run
	warmDur time.Duration // warm-up before each measured run
	rounds  int           // rounds of the latency scenario

	fortio, haproxy, nginx, trellisd, proxy string // binaries; "" when missing
	missing                                 map[string]string
	notes                                   []string

	app *app // fortio server + TCP sink, shared by every data-plane scenario

	pkiFiles *pki.Files // reference hops' TLS material, made on first use
}

// pki returns the reference hops' CA and certificates, writing them under the
// run directory on first use.
func (e *env) pki() (pki.Files, error) {
	if e.pkiFiles == nil {
		f, err := pki.Write(e.dir("pki"), haproxyHops[1], nginxHops[1])
		if err != nil {
			return pki.Files{}, err
		}
		e.pkiFiles = &f
	}
	return *e.pkiFiles, nil
}

func newEnv(ctx context.Context, log *slog.Logger, o envOptions) (*env, error) {
	root := o.root
	if root == "" {
		out, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			return nil, fmt.Errorf("find repository root (use -root): %w", err)
		}
		root = strings.TrimSpace(string(out))
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	e := &env{log: log, root: root, stamp: stamp, quick: o.quick, mtls: o.mtls, missing: map[string]string{},
		runDir: filepath.Join(root, "bench", ".run", stamp), results: filepath.Join(root, "bench", "results")}
	e.loadDur, e.warmDur, e.rounds = 20*time.Second, 2*time.Second, 3
	if o.quick {
		e.loadDur, e.warmDur, e.rounds = 2*time.Second, 500*time.Millisecond, 1
	}
	if o.duration > 0 {
		e.loadDur = o.duration
	}
	if o.rounds > 0 {
		e.rounds = o.rounds
	}
	for _, d := range []string{e.runDir, e.results} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("run directory: %w", err)
		}
	}
	e.fortio = e.tool("fortio", filepath.Join(root, "bench", ".tools", "bin", "fortio"), "run bench/setup.sh")
	e.haproxy = e.tool("haproxy", "/usr/sbin/haproxy", "run bench/setup.sh (apt-get install haproxy)")
	e.nginx = e.tool("nginx", "/usr/sbin/nginx", "run bench/setup.sh (apt-get install nginx)")
	e.buildTrellis(ctx, o.binDir)
	if e.fortio != "" {
		a, err := startApp(ctx, e)
		if err != nil {
			e.missing["fortio"] = err.Error()
			e.fortio = ""
		} else {
			e.app = a
		}
	}
	return e, nil
}

// tool finds a binary at path or on PATH; when missing it records why.
func (e *env) tool(name, path, hint string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return path
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	e.missing[name] = fmt.Sprintf("%s not installed: %s", name, hint)
	return ""
}

// buildTrellis builds trellisd and trellis-proxy into the run directory
// unless binDir has them; a failed build skips the Trellis scenarios.
func (e *env) buildTrellis(ctx context.Context, binDir string) {
	if binDir != "" {
		e.trellisd = e.tool("trellisd", filepath.Join(binDir, "trellisd"), "build with make build")
		e.proxy = e.tool("trellis-proxy", filepath.Join(binDir, "trellis-proxy"), "build with make build")
		return
	}
	out := filepath.Join(e.runDir, "bin")
	for _, name := range []string{"trellisd", "trellis-proxy"} {
		// As make build: -tags grpcnotrace (see the package doc of
		// cmd/trellis-proxy) and CGO_ENABLED=0 (no libc mapped).
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "grpcnotrace", "-o", filepath.Join(out, name), "./cmd/"+name)
		cmd.Dir = e.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			e.missing[name] = name + " build failed: " + firstLines(string(msg), 2)
			e.log.Warn("build failed; scenarios that need it will be skipped", "binary", name, "err", err, "output", string(msg))
			continue
		}
		if name == "trellisd" {
			e.trellisd = filepath.Join(out, name)
		} else {
			e.proxy = filepath.Join(out, name)
		}
	}
}

// need returns "" when every named tool is available, else why not.
func (e *env) need(tools ...string) string {
	for _, t := range tools {
		if r, ok := e.missing[t]; ok {
			return r
		}
	}
	if slices.Contains(tools, "fortio") && e.app == nil {
		return "fortio server not running"
	}
	return ""
}

// dir returns a fresh directory under the run directory.
func (e *env) dir(parts ...string) string {
	d := filepath.Join(append([]string{e.runDir}, parts...)...)
	_ = os.MkdirAll(d, 0o755)
	return d
}

// Close stops the shared app.
func (e *env) Close() error {
	if e.app != nil {
		return e.app.Close()
	}
	return nil
}

func (e *env) machine(ctx context.Context) report.Machine {
	m := procfs.ReadMachine()
	rm := report.Machine{CPUModel: m.CPUModel, Cores: m.Cores, Kernel: m.Kernel, GoVersion: runtime.Version(), Date: time.Now().UTC()}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		rm.GoVersion = strings.TrimSpace(string(out))
	}
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = e.root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	rm.Commit = git("rev-parse", "HEAD")
	rm.Dirty = git("status", "--porcelain", "--untracked-files=no") != ""
	return rm
}

// writeResults writes STAMP.md and STAMP.json (and latest.* copies) under
// bench/results.
func (e *env) writeResults(rep *report.Report) error {
	base := e.stamp
	if e.quick {
		base += "-quick"
	}
	var errs []error
	for _, name := range []string{base, "latest"} {
		md, err := os.Create(filepath.Join(e.results, name+".md"))
		if err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		errs = append(errs, rep.WriteMarkdown(md), md.Close())
		js, err := os.Create(filepath.Join(e.results, name+".json"))
		if err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		errs = append(errs, rep.WriteJSON(js), js.Close())
	}
	e.log.Info("results written", "markdown", filepath.Join(e.results, base+".md"), "json", filepath.Join(e.results, base+".json"))
	return errors.Join(errs...)
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "; ")
}

// envInt is the integer in the environment variable name, 0 when unset or
// not a number.
func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}
