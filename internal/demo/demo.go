package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	bookinfoconfig "github.com/trellis-mesh/trellis/examples/bookinfo"
)

// Options configures a demo run.
type Options struct {
	// Dir holds the run's config/, extras/ and logs/. Required. config/ and
	// logs/ are recreated on every run.
	Dir string
	// BinDir holds trellisd and trellis-proxy. Empty means the directory of
	// the running executable (bin/ after `make build`).
	BinDir string
	// Self is the program run as `Self demo app ...` for each Bookinfo app.
	// Empty means the running executable.
	Self string
	// Out receives the summary: where everything runs, things to try, and
	// the line starting with ReadyPrefix. Nil discards it.
	Out io.Writer
	// Logger receives progress. Nil discards it.
	Logger *slog.Logger
	// ReadyTimeout bounds the start-up, from the first child to the page
	// answering through the gateway. Zero means 90s.
	ReadyTimeout time.Duration
	// StopTimeout is how long children get between SIGTERM and SIGKILL.
	// Zero means 5s.
	StopTimeout time.Duration
}

// ReadyPrefix starts the line Run prints to Options.Out once the product page
// answers through the gateway.
const ReadyPrefix = "ready: "

// Run starts the demo mesh and blocks until ctx is done or a child exits; it
// then stops every child and returns once none is left. It returns nil when
// ctx ended the demo, and an error naming the culprit when start-up failed or
// a child died.
func Run(ctx context.Context, o Options) (err error) {
	if o.Dir == "" {
		return errors.New("demo: Options.Dir is required")
	}
	o = withDefaults(o)
	log := o.Logger.With("component", "demo")
	trellisd, proxy, self, err := binaries(o)
	if err != nil {
		return err
	}
	if err := checkFree(); err != nil {
		return err
	}
	if err := writeConfig(o.Dir); err != nil {
		return err
	}

	// Pdeathsig is tied to the thread that forks the child: keep that thread
	// alive, and ours, until every child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cs := newChildren(filepath.Join(o.Dir, "logs"))
	defer func() {
		log.Info("stopping", "children", len(cs.list))
		cs.stop(o.StopTimeout)
	}()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(o.ReadyTimeout)
	env := os.Environ()

	// 4: the control plane.
	log.Info("starting trellisd", "config", filepath.Join(o.Dir, "config"))
	dataDir := filepath.Join(o.Dir, DataSubdir)
	cp, err := cs.start("trellisd", trellisd, []string{"--config-dir", filepath.Join(o.Dir, "config"),
		"--data-dir", dataDir}, env)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := waitReady(ctx, client, cs, deadline,
		check{what: "trellisd", url: "http://" + MonitoringAddr + "/ready", log: cp.log}); err != nil {
		return startErr(ctx, err)
	}

	// 5 and 6: apps, then their proxies.
	plan := Plan()
	rows := []row{{name: "trellisd", c: cp, where: "xDS " + XDSAddr + ", CA and mTLS xDS " + SecureAddr + ", monitoring " + MonitoringAddr}}
	var checks []check
	for _, w := range plan {
		if w.Gateway {
			continue
		}
		appEnv := append(env[:len(env):len(env)], "HTTP_PROXY="+w.ProxyURL(), "http_proxy="+w.ProxyURL())
		c, err := cs.start("app-"+w.Name, self, appArgs(w), appEnv)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		rows = append(rows, row{name: "app " + w.ID(), c: c, where: w.AppAddr.String()})
		checks = append(checks, check{what: "app " + w.ID(), url: "http://" + w.AppAddr.String() + "/health", log: c.log})
	}
	log.Info("started apps")
	for _, w := range plan {
		c, err := cs.start("proxy-"+w.Name, proxy, proxyArgs(w, dataDir), env)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		rows = append(rows, row{name: "proxy " + w.ID(), c: c, where: proxyWhere(w)})
		checks = append(checks, check{what: "proxy " + w.ID(), url: w.ReadyURL(), log: c.log})
	}
	log.Info("started proxies")
	// 7: the page, end to end.
	checks = append(checks, check{what: "the product page through the gateway", url: ProductPageURL,
		log: filepath.Join(o.Dir, "logs", "proxy-istio-ingressgateway.log")})
	if err := waitReady(ctx, client, cs, deadline, checks...); err != nil {
		return startErr(ctx, err)
	}

	// 8: tell the user.
	printSummary(o.Out, o.Dir, rows)
	log.Info("ready", "url", ProductPageURL)

	// 9: run until told to stop or a child dies.
	select {
	case <-ctx.Done():
		log.Info("interrupted")
		return nil
	case c := <-cs.exited:
		return fmt.Errorf("demo: %w", c.exitError())
	}
}

// startErr reports a failed start-up; an interrupted start-up is no error.
func startErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("demo: %w", err)
}

func withDefaults(o Options) Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 5 * time.Second
	}
	return o
}

// binaries finds trellisd, trellis-proxy and the program that runs the apps.
func binaries(o Options) (trellisd, proxy, self string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", "", fmt.Errorf("demo: find own executable: %w", err)
	}
	self = o.Self
	if self == "" {
		self = exe
	}
	dir := o.BinDir
	if dir == "" {
		dir = filepath.Dir(exe)
	}
	trellisd = filepath.Join(dir, "trellisd")
	proxy = filepath.Join(dir, "trellis-proxy")
	for _, p := range []string{trellisd, proxy} {
		if _, err := os.Stat(p); err != nil {
			return "", "", "", fmt.Errorf("demo: %s not found next to %s (run `make build`): %w", filepath.Base(p), exe, err)
		}
	}
	return trellisd, proxy, self, nil
}

// checkFree fails when an address the demo needs is taken, most likely by a
// demo still running.
func checkFree() error {
	addrs := []string{XDSAddr, SecureAddr, MonitoringAddr, GatewayAddr}
	for _, w := range Plan() {
		if !w.Gateway {
			addrs = append(addrs, w.AppAddr.String())
		}
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("demo: %s is in use (is another demo running?): %w", a, err)
		}
		l.Close()
	}
	return nil
}

// writeConfig writes the default config to DIR/config and the extras to
// DIR/extras, replacing whatever a previous run left, and empties DIR/logs.
func writeConfig(dir string) error {
	for _, sub := range []string{"config", "extras", "logs"} {
		p := filepath.Join(dir, sub)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("demo: clean %s: %w", p, err)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return fs.WalkDir(bookinfoconfig.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := bookinfoconfig.FS.ReadFile(path)
		if err != nil {
			return fmt.Errorf("demo: read embedded %s: %w", path, err)
		}
		to := filepath.Join(dir, "config", path)
		if filepath.Dir(path) == bookinfoconfig.ExtrasDir {
			to = filepath.Join(dir, path)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		return nil
	})
}
