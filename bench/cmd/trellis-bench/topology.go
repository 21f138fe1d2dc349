package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/bench/haproxy"
	"github.com/trellis-mesh/trellis/bench/internal/meshcfg"
	"github.com/trellis-mesh/trellis/bench/internal/pki"
	"github.com/trellis-mesh/trellis/bench/internal/proc"
	"github.com/trellis-mesh/trellis/bench/internal/tcpload"
	"github.com/trellis-mesh/trellis/bench/nginx"
)

// plan is the data-plane address plan (docs/local-mesh.md; ranges unused by
// the demo and the e2e tests).
var plan = meshcfg.DefaultPlan()

// Reference proxy hop addresses: client-side hop .1, server-side hop .2.
var (
	haproxyHops = [2]netip.Addr{netip.MustParseAddr("127.0.152.1"), netip.MustParseAddr("127.0.152.2")}
	nginxHops   = [2]netip.Addr{netip.MustParseAddr("127.0.153.1"), netip.MustParseAddr("127.0.153.2")}
)

// app is the fortio echo server (HTTP 8080, gRPC 8079) and the TCP sink
// (8078) every hop forwards to.
type app struct {
	server *proc.Process
	sink   *tcpload.Sink
}

func startApp(ctx context.Context, e *env) (*app, error) {
	p, err := proc.Start(proc.Spec{Name: "app-fortio", Path: e.fortio, LogDir: e.runDir, Args: []string{"server",
		"-http-port", hostPort(plan.App, meshcfg.PortHTTP), "-grpc-port", hostPort(plan.App, meshcfg.PortGRPC),
		"-tcp-port", "disabled", "-udp-port", "disabled", "-redirect-port", "disabled", "-ui-path", "", "-quiet"}})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, port := range []int{meshcfg.PortHTTP, meshcfg.PortGRPC} {
		if err := proc.WaitTCP(wctx, p, hostPort(plan.App, port)); err != nil {
			p.Close()
			return nil, fmt.Errorf("fortio server: %w", err)
		}
	}
	sink, err := tcpload.Listen(hostPort(plan.App, meshcfg.PortTCP))
	if err != nil {
		p.Close()
		return nil, err
	}
	return &app{server: p, sink: sink}, nil
}

// Close stops the server and the sink.
func (a *app) Close() error { return errors.Join(a.sink.Close(), a.server.Close()) }

// pin moves every thread of the app server to cpus (taskset -a -p).
func (a *app) pin(ctx context.Context, cpus string) error {
	out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", cpus, strconv.Itoa(a.server.PID())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pin app to %s: %w: %s", cpus, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// topo is one running topology: fortio sends to entry; for two-hop
// topologies client and server are the two proxy processes.
type topo struct {
	kind   string
	mtls   bool       // the hop between the two proxies is mutual TLS
	entry  netip.Addr // first hop (the app itself for no mesh)
	second netip.Addr // second hop, for single-hop scenarios; the app for no mesh
	host   string     // Host header / :authority; "" for fortio's default
	client *proc.Process
	server *proc.Process
	admin  string // client sidecar admin base URL, Trellis only
	procs  proc.Group
}

func (t *topo) url(port int) string  { return "http://" + hostPort(t.entry, port) + "/echo" }
func (t *topo) addr(port int) string { return hostPort(t.entry, port) }

// proxies returns the proxy processes to measure, client first.
func (t *topo) proxies() []*proc.Process {
	var out []*proc.Process
	for _, p := range []*proc.Process{t.client, t.server} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Close stops every process of the topology.
func (t *topo) Close() error { return t.procs.Close() }

func noMesh() *topo {
	return &topo{kind: "no mesh", entry: plan.App, second: plan.App}
}

// trellisOptions shape a Trellis topology.
type trellisOptions struct {
	Fillers, FillerEndpoints int    // extra services known to the client sidecar
	NoClient                 bool   // server sidecar only (single-hop scenarios)
	ServerCPUs               string // taskset -c for the server sidecar
	ServerGOMAXPROCS         int    // 0: Go's default
	// Plaintext turns automatic mTLS off even when the run uses it. A
	// single-hop topology (NoClient) is always plain text: fortio is the
	// client and holds no mesh identity.
	Plaintext bool
}

// startTrellis runs trellisd (its CA and join tokens in the run directory) and
// the sidecars, and waits until a request goes through. With mTLS (e.mtls and
// two hops) it then checks that the server sidecar refuses plain text, so the
// hop measured is really mutual TLS.
func startTrellis(ctx context.Context, e *env, name string, o trellisOptions) (*topo, error) {
	if r := e.need("trellisd", "trellis-proxy"); r != "" {
		return nil, errors.New(r)
	}
	mtls := e.mtls && !o.Plaintext && !o.NoClient
	dir := e.dir(name)
	cfg := filepath.Join(dir, "config")
	data := filepath.Join(dir, "data")
	if err := (meshcfg.DataPlane{Plan: plan, Fillers: o.Fillers, FillerEndpoints: o.FillerEndpoints, MTLS: mtls}).Write(cfg); err != nil {
		return nil, err
	}
	t := &topo{kind: "trellis", mtls: mtls, entry: plan.ClientSidecar, second: plan.ServerSidecar, host: meshcfg.ServerHost,
		admin: "http://" + hostPort(plan.ClientSidecar, 15000)}
	if o.NoClient {
		t.entry = plan.ServerSidecar
	}
	xds := hostPort(plan.Trellisd, 15010)
	d, err := proc.Start(proc.Spec{Name: "trellisd", Path: e.trellisd, LogDir: dir, Args: []string{
		"--config-dir", cfg, "--data-dir", data, "--xds-addr", xds, "--monitoring-addr", hostPort(plan.Trellisd, 15014)}})
	if err != nil {
		return nil, err
	}
	t.procs.Add(d)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitHTTP(wctx, d, "http://"+hostPort(plan.Trellisd, 15014)+"/ready"); err != nil {
		t.Close()
		return nil, fmt.Errorf("trellisd: %w", err)
	}
	startProxy := func(role string, addr netip.Addr, cpus string, gomaxprocs int) (*proc.Process, error) {
		spec := proc.Spec{Name: role + "-sidecar", Path: e.proxy, LogDir: dir, CPUs: cpus, Args: []string{
			"--xds", xds, "--data-dir", data, "--workload", meshcfg.Namespace + "/" + role, "--address", addr.String()}}
		if gomaxprocs > 0 {
			spec.Env = append(spec.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
		}
		p, err := proc.Start(spec)
		if err != nil {
			return nil, err
		}
		t.procs.Add(p)
		if err := proc.WaitHTTP(wctx, p, "http://"+hostPort(addr, 15021)+"/healthz/ready"); err != nil {
			return nil, fmt.Errorf("%s sidecar: %w", role, err)
		}
		return p, nil
	}
	if t.server, err = startProxy("server", plan.ServerSidecar, o.ServerCPUs, o.ServerGOMAXPROCS); err != nil {
		t.Close()
		return nil, err
	}
	if !o.NoClient {
		if t.client, err = startProxy("client", plan.ClientSidecar, "", 0); err != nil {
			t.Close()
			return nil, err
		}
	}
	if err := waitThrough(wctx, t); err != nil {
		t.Close()
		return nil, err
	}
	if mtls {
		if err := refusesPlaintext(wctx, hostPort(plan.ServerSidecar, meshcfg.PortHTTP)); err != nil {
			t.Close()
			return nil, fmt.Errorf("server sidecar is not mTLS-only: %w", err)
		}
	}
	return t, nil
}

// refusesPlaintext checks that a plain-text HTTP request to addr gets no
// answer: the STRICT server sidecar takes only mutual TLS, so the requests
// that went through used it.
func refusesPlaintext(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/echo", nil)
	if err != nil {
		return err
	}
	req.Host = meshcfg.ServerHost
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil // refused, reset or closed: what STRICT does to plain text
	}
	resp.Body.Close()
	return fmt.Errorf("plain-text request to %s answered %d", addr, resp.StatusCode)
}

// hopsOptions shape a pair of reference proxy hops.
type hopsOptions struct {
	Single  bool   // only the server-side hop
	Threads int    // HAProxy nbthread / nginx worker_processes; 0: default
	CPUs    string // taskset -c for the hops
	// Plaintext keeps the hop between the two proxies plain text even when
	// the run uses mTLS. A single hop is always plain text (fortio on both
	// sides).
	Plaintext bool
}

// tls reports whether the hops speak mutual TLS to each other.
func (o hopsOptions) tls(e *env) bool { return e.mtls && !o.Plaintext && !o.Single }

// startHAProxy runs one or two HAProxy processes in the two-hop topology.
func startHAProxy(ctx context.Context, e *env, name string, o hopsOptions) (*topo, error) {
	if r := e.need("haproxy"); r != "" {
		return nil, errors.New(r)
	}
	dir := e.dir(name)
	t := &topo{kind: "haproxy", mtls: o.tls(e), entry: haproxyHops[0], second: haproxyHops[1]}
	if o.Single {
		t.entry = haproxyHops[1]
	}
	var files pki.Files
	if t.mtls {
		var err error
		if files, err = e.pki(); err != nil {
			return nil, err
		}
	}
	hop := func(role string, listen, upstream netip.Addr) (*proc.Process, error) {
		route := func(n string, port int, mode string, h2 bool) haproxy.Route {
			return haproxy.Route{Name: n, Listen: hostPort(listen, port), Upstream: hostPort(upstream, port), Mode: mode, H2: h2}
		}
		h := haproxy.Hop{Threads: o.Threads}
		if t.mtls && role == "server" {
			h.Serve = &haproxy.TLS{CA: files.CA, Cert: files.ServerBundle}
		}
		if t.mtls && role == "client" {
			h.Dial = &haproxy.TLS{CA: files.CA, Cert: files.ClientBundle, ServerName: pki.ServerName}
		}
		h.Routes = []haproxy.Route{
			route("http", meshcfg.PortHTTP, "http", false), route("grpc", meshcfg.PortGRPC, "http", true),
			route("tcp", meshcfg.PortTCP, "tcp", false)}
		cfg, err := h.Render()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, role+".cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, fmt.Errorf("haproxy config: %w", err)
		}
		p, err := proc.Start(proc.Spec{Name: "haproxy-" + role, Path: e.haproxy, Args: haproxy.Args(path), LogDir: dir, CPUs: o.CPUs})
		if err != nil {
			return nil, err
		}
		t.procs.Add(p)
		return p, nil
	}
	var err error
	if t.server, err = hop("server", haproxyHops[1], plan.App); err != nil {
		t.Close()
		return nil, err
	}
	if !o.Single {
		if t.client, err = hop("client", haproxyHops[0], haproxyHops[1]); err != nil {
			t.Close()
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := waitThrough(wctx, t); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// startNginx runs one or two nginx masters (one worker each by default).
func startNginx(ctx context.Context, e *env, name string, o hopsOptions) (*topo, error) {
	if r := e.need("nginx"); r != "" {
		return nil, errors.New(r)
	}
	dir := e.dir(name)
	t := &topo{kind: "nginx", mtls: o.tls(e), entry: nginxHops[0], second: nginxHops[1]}
	if o.Single {
		t.entry = nginxHops[1]
	}
	var files pki.Files
	if t.mtls {
		var err error
		if files, err = e.pki(); err != nil {
			return nil, err
		}
	}
	hop := func(role string, listen, upstream netip.Addr) (*proc.Process, error) {
		hdir := e.dir(name, role)
		route := func(n string, port int, h2 bool) nginx.Route {
			return nginx.Route{Name: n, Listen: hostPort(listen, port), Upstream: hostPort(upstream, port), H2: h2}
		}
		h := nginx.Hop{Dir: hdir, Workers: o.Threads, Root: os.Geteuid() == 0, Routes: []nginx.Route{
			route("http", meshcfg.PortHTTP, false), route("grpc", meshcfg.PortGRPC, true)}}
		if t.mtls && role == "server" {
			h.Serve = &nginx.TLS{CA: files.CA, Cert: files.ServerCert, Key: files.ServerKey}
		}
		if t.mtls && role == "client" {
			h.Dial = &nginx.TLS{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey, ServerName: pki.ServerName}
		}
		cfg, err := h.Render()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(hdir, "nginx.conf")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, fmt.Errorf("nginx config: %w", err)
		}
		p, err := proc.Start(proc.Spec{Name: "nginx-" + role, Path: e.nginx, Args: nginx.Args(hdir, path), LogDir: dir, CPUs: o.CPUs})
		if err != nil {
			return nil, err
		}
		t.procs.Add(p)
		return p, nil
	}
	var err error
	if t.server, err = hop("server", nginxHops[1], plan.App); err != nil {
		t.Close()
		return nil, err
	}
	if !o.Single {
		if t.client, err = hop("client", nginxHops[0], nginxHops[1]); err != nil {
			t.Close()
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := waitThrough(wctx, t); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// waitThrough polls until an HTTP request through the topology answers 200.
func waitThrough(ctx context.Context, t *topo) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last *proc.Process
	if ps := t.proxies(); len(ps) > 0 {
		last = ps[len(ps)-1]
	}
	return proc.Poll(ctx, last, "request through "+t.kind, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(meshcfg.PortHTTP), nil)
		if err != nil {
			return err
		}
		if t.host != "" {
			req.Host = t.host
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

func hostPort(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}
