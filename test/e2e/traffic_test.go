package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestTraffic sends each protocol through client sidecar → server sidecar →
// app on one mesh without a VirtualService.
func TestTraffic(t *testing.T) {
	m := startMesh(t, meshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("http1 through two sidecars", func(t *testing.T) {
		c := m.egressClient(t)
		before := m.apps["echo-v1"].httpRequests.Load() + m.apps["echo-v2"].httpRequests.Load()
		const n = 10
		for i := range n {
			r, err := getEcho(ctx, c, echoURL(portHTTP, fmt.Sprintf("/hello/%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			got := echoReply{Name: r.Name, Proto: r.Proto, Method: r.Method, Path: r.Path}
			want := echoReply{Name: r.Name, Proto: 1, Method: "GET", Path: fmt.Sprintf("/hello/%d", i)}
			if r.Name != "echo-v1" && r.Name != "echo-v2" {
				t.Errorf("answered by %q, want an echo workload", r.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request %d (-want +got):\n%s", i, diff)
			}
			if !strings.HasPrefix(r.Host, echoHost) {
				t.Errorf("app saw Host %q, want %s[:%d]", r.Host, echoHost, portHTTP)
			}
		}
		after := m.apps["echo-v1"].httpRequests.Load() + m.apps["echo-v2"].httpRequests.Load()
		if after-before != n {
			t.Errorf("apps counted %d requests, want %d", after-before, n)
		}
		// Both sidecars count the traffic: the client's outbound cluster and
		// a server's inbound cluster.
		waitCounted(t, m.clientIP, fmt.Sprintf("outbound|%d||%s", portHTTP, echoHost))
		waitCounted(t, m.bl.ip(hostEchoV1)+"|"+m.bl.ip(hostEchoV2), fmt.Sprintf("inbound|%d||", portHTTP))
	})

	t.Run("h2c upstream on HTTP2 port", func(t *testing.T) {
		c := m.h2cClient(t)
		for i := range 4 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, echoURL(portHTTP2, "/h2c"), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("client sidecar answered with HTTP/%d, want HTTP/2", resp.ProtoMajor)
			}
			r, err := getEcho(ctx, c, echoURL(portHTTP2, "/h2c"))
			if err != nil {
				t.Fatal(err)
			}
			if r.Proto != 2 {
				t.Errorf("app %s saw HTTP/%d, want HTTP/2 upstream for a protocol HTTP2 port", r.Name, r.Proto)
			}
		}
	})

	t.Run("grpc bidi streaming", func(t *testing.T) {
		conn, err := grpc.NewClient(net.JoinHostPort(m.clientIP, strconv.Itoa(portGRPC)),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority(fmt.Sprintf("%s:%d", echoHost, portGRPC)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := testgrpc.NewTestServiceClient(conn)
		for _, pipelined := range []bool{false, true, true} {
			server, err := duplexRound(ctx, client, 20, pipelined)
			if err != nil {
				t.Fatalf("pipelined=%v: %v", pipelined, err)
			}
			if server != "echo-v1" && server != "echo-v2" {
				t.Errorf("served-by %q, want an echo workload", server)
			}
		}
	})

	t.Run("websocket echo", func(t *testing.T) {
		d := websocket.Dialer{NetDialContext: m.egressDialer(), HandshakeTimeout: 5 * time.Second}
		c, resp, err := d.DialContext(ctx, fmt.Sprintf("ws://%s:%d/ws", echoHost, portHTTP), nil)
		if err != nil {
			status := ""
			if resp != nil {
				status = resp.Status
			}
			t.Fatalf("websocket dial: %v %s", err, status)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var server string
		for i := range 10 {
			msg := fmt.Sprintf("ping-%d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			_, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			name, body, _ := strings.Cut(string(got), ":")
			if server == "" {
				server = name
			}
			if name != server || body != msg {
				t.Errorf("message %d: got %q, want %q (one connection, one server)", i, got, server+":"+msg)
			}
		}
	})

	t.Run("tcp echo", func(t *testing.T) {
		before := m.apps["echo-v1"].tcpConns.Load() + m.apps["echo-v2"].tcpConns.Load()
		const conns = 4
		for i := range conns {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(m.clientIP, strconv.Itoa(portTCP)), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for j := range 5 {
				line := fmt.Sprintf("conn %d line %d\n", i, j)
				if _, err := io.WriteString(c, line); err != nil {
					t.Fatalf("conn %d: write: %v", i, err)
				}
				got, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("conn %d: read: %v", i, err)
				}
				if got != line {
					t.Errorf("conn %d: echoed %q, want %q", i, got, line)
				}
			}
			c.Close()
		}
		after := m.apps["echo-v1"].tcpConns.Load() + m.apps["echo-v2"].tcpConns.Load()
		if after-before != conns {
			t.Errorf("TCP apps accepted %d connections, want %d", after-before, conns)
		}
	})

	t.Run("round robin over two workloads", func(t *testing.T) {
		c := m.egressClient(t)
		seen := map[string]int{}
		const n = 40
		for range n {
			r, err := getEcho(ctx, c, echoURL(portHTTP, "/rr"))
			if err != nil {
				t.Fatal(err)
			}
			seen[r.Name]++
		}
		// Round robin over two equal endpoints: each gets about half.
		for _, w := range []string{"echo-v1", "echo-v2"} {
			if seen[w] < n/4 {
				t.Errorf("%s answered %d of %d requests; want at least %d (seen %v)", w, seen[w], n, n/4, seen)
			}
		}
	})

	t.Run("http proxy listener", func(t *testing.T) {
		c := m.proxyClient(t)
		for _, tc := range []struct {
			name, url, path string
			status          int
		}{
			{"fqdn with port", echoURL(portHTTP, "/by/fqdn"), "/by/fqdn", http.StatusOK},
			{"short name", fmt.Sprintf("http://echo:%d/by/name", portHTTP), "/by/name", http.StatusOK},
			// Istio's default outboundTrafficPolicy ALLOW_ANY: a destination
			// the registry does not know is passed through to itself.
			{"unregistered address passes through", "http://" + m.apps["echo-v1"].httpAddr + "/direct", "/direct", http.StatusOK},
			{"unresolvable host passed through fails", "http://nosuch.default.svc.cluster.local:8080/", "", http.StatusServiceUnavailable},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("GET %s via HTTP proxy: %s, want %d", tc.url, resp.Status, tc.status)
				}
				if tc.status != http.StatusOK {
					return
				}
				r, err := getEcho(ctx, c, tc.url)
				if err != nil {
					t.Fatal(err)
				}
				if r.Path != tc.path || (r.Name != "echo-v1" && r.Name != "echo-v2") {
					t.Errorf("GET %s via HTTP proxy: answered by %q with path %q, want an echo workload and %q", tc.url, r.Name, r.Path, tc.path)
				}
			})
		}
	})
}

// duplexRound runs one FullDuplexCall carrying n messages each way and
// returns the workload that served it. Pipelined sends all n requests from a
// second goroutine while responses are read; otherwise each request waits
// for its response (ping-pong).
func duplexRound(ctx context.Context, client testgrpc.TestServiceClient, n int, pipelined bool) (server string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		return "", fmt.Errorf("FullDuplexCall: %w", err)
	}
	send := func(i int) error {
		return stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: fmt.Appendf(nil, "msg-%d", i)}})
	}
	sendErr := make(chan error, 1)
	if pipelined {
		go func() {
			for i := range n {
				if err := send(i); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- stream.CloseSend()
		}()
		// The sender ends once the stream is done: cancel unblocks Send.
		defer func() {
			cancel()
			if serr := <-sendErr; serr != nil && err == nil {
				err = fmt.Errorf("send: %w", serr)
			}
		}()
	} else if err := send(0); err != nil {
		return "", fmt.Errorf("send 0: %w", err)
	}
	md, err := stream.Header()
	if err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	server = strings.Join(md.Get("served-by"), ",")
	for i := range n {
		if !pipelined && i > 0 {
			if err := send(i); err != nil {
				return server, fmt.Errorf("send %d: %w", i, err)
			}
		}
		resp, err := stream.Recv()
		if err != nil {
			return server, fmt.Errorf("recv %d: %w", i, err)
		}
		if got, want := string(resp.GetPayload().GetBody()), fmt.Sprintf("%s|msg-%d", server, i); got != want {
			return server, fmt.Errorf("response %d = %q, want %q", i, got, want)
		}
	}
	if !pipelined {
		if err := stream.CloseSend(); err != nil {
			return server, fmt.Errorf("close send: %w", err)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		return server, fmt.Errorf("after %d responses: %v, want EOF", n, err)
	}
	return server, nil
}

// waitCounted polls the Prometheus endpoints of the proxies at ips
// ("|"-separated; any one suffices) until one has a sample whose labels
// mention substr with a value above zero.
func waitCounted(t *testing.T, ips, substr string) {
	t.Helper()
	waitFor(t, "a proxy metric for "+substr, 10*time.Second, func() error {
		var last error
		for ip := range strings.SplitSeq(ips, "|") {
			body, err := httpGet(context.Background(), "http://"+ip+":15090/stats/prometheus")
			if err != nil {
				last = err
				continue
			}
			if counted(body, substr) {
				return nil
			}
			last = fmt.Errorf("no sample mentioning %q above 0 at %s", substr, ip)
		}
		return last
	})
}

// counted reports whether a Prometheus text exposition has a sample whose
// labels contain substr and whose value is above zero.
func counted(body, substr string) bool {
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || !strings.Contains(line, substr) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil && v > 0 {
			return true
		}
	}
	return false
}

func TestCounted(t *testing.T) {
	const body = `# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|8080||echo.default.svc.cluster.local"} 3
envoy_cluster_upstream_rq_total{envoy_cluster_name="inbound|8080||"} 0
istio_requests_total{destination_cluster="inbound|8081||",code="200"} 1.5e+00 1700000000000
`
	for _, tc := range []struct {
		name, substr string
		want         bool
	}{
		{"positive counter", "outbound|8080||echo.default.svc.cluster.local", true},
		{"zero counter", "inbound|8080||", false},
		{"with timestamp", "inbound|8081||", true},
		{"absent", "outbound|9090||", false},
		{"help lines ignored", "TYPE", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := counted(body, tc.substr); got != tc.want {
				t.Errorf("counted(%q) = %v, want %v", tc.substr, got, tc.want)
			}
		})
	}
}

func FuzzCounted(f *testing.F) {
	f.Add("a{b=\"x\"} 1\n", "x")
	f.Add("# HELP\n}{ } NaN\n", "}")
	f.Fuzz(func(t *testing.T, body, substr string) {
		_ = counted(body, substr) // must not panic
	})
}
