package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The service every test calls and its ports, one per protocol.
const (
	echoHost  = "echo.default.svc.cluster.local"
	portHTTP  = 8080
	portHTTP2 = 8081
	portGRPC  = 8082
	portTCP   = 8083

	// proxyHTTPPort is the sidecars' HTTP-proxy listener (meshConfig.proxyHttpPort).
	proxyHTTPPort = 15080
)

// Hosts within a mesh's block (127.A.B.host).
const (
	hostTrellisd = 1
	hostClient   = 10
	hostEchoV1   = 11
	hostEchoV2   = 12
	hostAppsV1   = 21
	hostAppsV2   = 22
)

// meshOptions shape one mesh. The zero value is a mesh without a
// VirtualService (the client round-robins over both echo workloads) whose
// proxies use delta xDS.
type meshOptions struct {
	// Subset, when set ("v1" or "v2"), adds a VirtualService sending all of
	// echo's HTTP traffic to that DestinationRule subset.
	Subset string
	// SotW starts every proxy with --xds-delta=false (state of the world).
	SotW bool
}

// mesh is one running topology: trellisd, a client sidecar and two echo
// workloads (sidecar + apps), all in one loopback block.
type mesh struct {
	t        *testing.T
	bl       block
	dir      string // config directory trellisd watches
	dataDir  string // trellisd's CA, join tokens and root cert; the proxies find theirs here
	opts     meshOptions
	xdsAddr  string
	monAddr  string
	trellisd *proc
	proxies  map[string]*proc // by workload name
	apps     map[string]*apps // by workload name: echo-v1, echo-v2
	clientIP string
}

// startMesh starts a mesh and waits until the client can reach echo.
func startMesh(t *testing.T, opts meshOptions) *mesh {
	t.Helper()
	bl := newBlock(t)
	m := &mesh{
		t: t, bl: bl, dir: t.TempDir(), opts: opts,
		xdsAddr:  bl.ip(hostTrellisd) + ":15010",
		monAddr:  bl.ip(hostTrellisd) + ":15014",
		proxies:  map[string]*proc{},
		apps:     map[string]*apps{},
		clientIP: bl.ip(hostClient),
	}
	// Registered before any process starts, so it runs after they stop.
	t.Cleanup(func() {
		if t.Failed() {
			m.logConfig()
		}
	})
	m.apps["echo-v1"] = startApps(t, "echo-v1", bl.ip(hostAppsV1))
	m.apps["echo-v2"] = startApps(t, "echo-v2", bl.ip(hostAppsV2))

	writeFile(t, m.dir, "mesh.yaml", m.meshYAML())
	writeFile(t, m.dir, "sidecars.yaml", m.sidecarsYAML())
	writeFile(t, m.dir, "dr-echo.yaml", destinationRuleYAML)
	if opts.Subset != "" {
		writeFile(t, m.dir, "vs-echo.yaml", virtualServiceYAML(opts.Subset))
	}

	m.startTrellisd()
	// Servers first, so that the client's first routes lead somewhere.
	m.startProxy("echo-v1", bl.ip(hostEchoV1))
	m.startProxy("echo-v2", bl.ip(hostEchoV2))
	m.startProxy("client", m.clientIP)

	c := m.egressClient(t)
	want := "echo-v1|echo-v2"
	if opts.Subset != "" {
		want = "echo-" + opts.Subset
	}
	waitFor(t, "echo reachable through the client sidecar", readyTimeout, func() error {
		r, err := getEcho(context.Background(), c, fmt.Sprintf("http://%s:%d/ready", echoHost, portHTTP))
		if err != nil {
			return err
		}
		if !strings.Contains(want, r.Name) {
			return fmt.Errorf("answered by %s, want %s", r.Name, want)
		}
		return nil
	}, m.all()...)
	return m
}

// logConfig logs the config directory's files as they are now.
func (m *mesh) logConfig() {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.t.Logf("config dir: %v", err)
		return
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(m.dir, e.Name()))
		if err != nil {
			m.t.Logf("config %s: %v", e.Name(), err)
			continue
		}
		m.t.Logf("---- config %s ----\n%s", e.Name(), b)
	}
}

// all lists every process of the mesh.
func (m *mesh) all() []*proc {
	ps := []*proc{m.trellisd}
	for _, p := range m.proxies {
		ps = append(ps, p)
	}
	return ps
}

// startTrellisd starts trellisd on the mesh's addresses and waits for /ready.
func (m *mesh) startTrellisd() {
	m.t.Helper()
	if m.dataDir == "" { // kept across restarts: the CA root must not change
		m.dataDir = m.t.TempDir()
	}
	m.trellisd = startProc(m.t, "trellisd", "trellisd",
		"--config-dir", m.dir, "--data-dir", m.dataDir, "--xds-addr", m.xdsAddr, "--monitoring-addr", m.monAddr)
	waitFor(m.t, "trellisd /ready", readyTimeout, ready("http://"+m.monAddr+"/ready"), m.trellisd)
}

// startProxy starts the sidecar of WorkloadEntry default/name on ip and waits
// for its readiness endpoint.
func (m *mesh) startProxy(name, ip string) {
	m.t.Helper()
	args := []string{"--xds", m.xdsAddr, "--data-dir", m.dataDir, "--workload", "default/" + name, "--address", ip}
	if m.opts.SotW {
		args = append(args, "--xds-delta=false")
	}
	p := startProc(m.t, "proxy "+name, "trellis-proxy", args...)
	m.proxies[name] = p
	waitFor(m.t, "proxy "+name+" ready", readyTimeout, ready("http://"+ip+":15021/healthz/ready"), p, m.trellisd)
}

// meshYAML declares the echo service and the three workloads.
func (m *mesh) meshYAML() string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - %[1]s
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %[2]d, name: http, protocol: HTTP}
  - {number: %[3]d, name: http2, protocol: HTTP2}
  - {number: %[4]d, name: grpc, protocol: GRPC}
  - {number: %[5]d, name: tcp, protocol: TCP}
  workloadSelector:
    labels:
      app: echo
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: client
  namespace: default
spec:
  address: %[6]s
  labels:
    app: client
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v1
  namespace: default
spec:
  address: %[7]s
  labels:
    app: echo
    version: v1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v2
  namespace: default
spec:
  address: %[8]s
  labels:
    app: echo
    version: v2
`, echoHost, portHTTP, portHTTP2, portGRPC, portTCP,
		m.clientIP, m.bl.ip(hostEchoV1), m.bl.ip(hostEchoV2))
}

// sidecarsYAML gives the client one egress listener per echo port on its own
// address, and each echo workload one ingress per port to its apps.
func (m *mesh) sidecarsYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: client
  namespace: default
spec:
  workloadSelector:
    labels:
      app: client
  egress:
`)
	for _, p := range []struct {
		n          int
		name, prot string
	}{{portHTTP, "http", "HTTP"}, {portHTTP2, "http2", "HTTP2"}, {portGRPC, "grpc", "GRPC"}, {portTCP, "tcp", "TCP"}} {
		fmt.Fprintf(&b, `  - port: {number: %d, protocol: %s, name: %s}
    bind: %s
    captureMode: NONE
    hosts:
    - ./*
`, p.n, p.prot, p.name, m.clientIP)
	}
	for _, v := range []string{"v1", "v2"} {
		a := m.apps["echo-"+v]
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: echo-%[1]s
  namespace: default
spec:
  workloadSelector:
    labels:
      app: echo
      version: %[1]s
  ingress:
  - port: {number: %[2]d, protocol: HTTP, name: http}
    defaultEndpoint: %[3]s
  - port: {number: %[4]d, protocol: HTTP2, name: http2}
    defaultEndpoint: %[5]s
  - port: {number: %[6]d, protocol: GRPC, name: grpc}
    defaultEndpoint: %[7]s
  - port: {number: %[8]d, protocol: TCP, name: tcp}
    defaultEndpoint: %[9]s
  egress:
  - hosts:
    - ./*
`, v, portHTTP, a.httpAddr, portHTTP2, a.h2cAddr, portGRPC, a.grpcAddr, portTCP, a.tcpAddr)
	}
	return b.String()
}

const destinationRuleYAML = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
  namespace: default
spec:
  host: ` + echoHost + `
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`

// virtualServiceYAML routes all of echo's HTTP traffic to one subset.
func virtualServiceYAML(subset string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - %s
  http:
  - route:
    - destination:
        host: %s
        subset: %s
      weight: 100
`, echoHost, echoHost, subset)
}

// egressDialer dials the client sidecar's egress listener for the port of
// whatever address is asked for: the test is the client app, calling a
// service by name through its sidecar.
func (m *mesh) egressDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort(m.clientIP, port))
	}
}

// egressClient speaks HTTP/1.1 to the client sidecar's egress listeners.
func (m *mesh) egressClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, DialContext: m.egressDialer(), MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2cClient speaks HTTP/2 with prior knowledge to the egress listeners.
func (m *mesh) h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, DialContext: m.egressDialer(), Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// proxyClient uses the client sidecar's HTTP-proxy listener, as an app with
// HTTP_PROXY=http://ADDRESS:15080 does.
func (m *mesh) proxyClient(t *testing.T) *http.Client {
	u := &url.URL{Scheme: "http", Host: net.JoinHostPort(m.clientIP, fmt.Sprint(proxyHTTPPort))}
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// echoURL is a URL of echo on port.
func echoURL(port int, path string) string {
	return fmt.Sprintf("http://%s:%d%s", echoHost, port, path)
}

// getEcho fetches an echo app's reply; any status but 200 is an error.
func getEcho(ctx context.Context, c *http.Client, url string) (echoReply, error) {
	var r echoReply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s: %s: %s", url, resp.Status, tail(string(body), 200))
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("GET %s: not an echo reply: %w: %s", url, err, tail(string(body), 200))
	}
	return r, nil
}
