package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// echoReply is what the HTTP echo apps answer, as JSON.
type echoReply struct {
	Name    string              `json:"name"`  // the app's workload name
	Proto   int                 `json:"proto"` // r.ProtoMajor as the app saw it
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Remote  string              `json:"remote"`
	Headers map[string][]string `json:"headers"`
}

// apps are the test applications behind one server workload, all on one
// loopback address with ephemeral ports. Close stops them and waits for their
// goroutines.
type apps struct {
	name string
	// Addresses (host:port) of each app, used as Sidecar defaultEndpoints.
	httpAddr, h2cAddr, grpcAddr, tcpAddr string

	httpRequests atomic.Int64 // requests seen by the HTTP and h2c apps
	tcpConns     atomic.Int64 // connections accepted by the TCP app
	// failNext makes the next N HTTP requests (any path but /ws) answer
	// 500; each decrements it. Tests store a count to make the workload
	// fail N times in a row, and 0 to heal it.
	failNext atomic.Int64

	keysMu sync.Mutex
	keys   map[string]int // /fail requests seen per key

	servers []*http.Server
	grpc    *grpc.Server
	tcpLn   net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{} // open TCP echo connections
}

// startApps starts the HTTP (with WebSocket at /ws), h2c, gRPC and TCP echo
// apps of workload name on address ip.
func startApps(t *testing.T, name, ip string) *apps {
	t.Helper()
	a := &apps{name: name, conns: map[net.Conn]struct{}{}, keys: map[string]int{}}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("apps %s: %v", name, err)
		}
		return l
	}
	t.Cleanup(a.Close)

	for _, addr := range []*string{&a.httpAddr, &a.h2cAddr} {
		l := listen()
		*addr = l.Addr().String()
		srv := &http.Server{Handler: a, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		a.servers = append(a.servers, srv)
		a.wg.Go(func() { _ = srv.Serve(l) })
	}

	gl := listen()
	a.grpcAddr = gl.Addr().String()
	a.grpc = grpc.NewServer()
	testgrpc.RegisterTestServiceServer(a.grpc, &duplexServer{name: name})
	a.wg.Go(func() { _ = a.grpc.Serve(gl) })

	a.tcpLn = listen()
	a.tcpAddr = a.tcpLn.Addr().String()
	a.wg.Go(a.serveTCP)
	return a
}

// Close stops every app and waits for their goroutines.
func (a *apps) Close() {
	for _, s := range a.servers {
		_ = s.Close()
	}
	if a.grpc != nil {
		a.grpc.Stop()
	}
	if a.tcpLn != nil {
		_ = a.tcpLn.Close()
	}
	a.mu.Lock()
	for c := range a.conns {
		_ = c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// ServeHTTP is the HTTP and h2c echo; /ws is a WebSocket echo that prefixes
// each message with the app's name. Test hooks, all answering the echo
// reply when they do not fail:
//   - /status/CODE answers CODE;
//   - /fail?key=K&n=N&code=C answers C (default 503) to the first N
//     (default 1) requests with key K, then 200;
//   - /delay?ms=N answers after N ms, or when the caller goes away;
//   - while failNext > 0, any request answers 500.
func (a *apps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.httpRequests.Add(1)
	if r.URL.Path == "/ws" {
		a.serveWebSocket(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if code := a.hookStatus(r); code != http.StatusOK {
		http.Error(w, fmt.Sprintf("%s: status %d", a.name, code), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echoReply{
		Name: a.name, Proto: r.ProtoMajor, Method: r.Method, Path: r.URL.Path,
		Host: r.Host, Remote: r.RemoteAddr, Headers: r.Header,
	})
}

// hookStatus runs the test hooks of ServeHTTP and returns the status to
// answer; 200 means the echo reply.
func (a *apps) hookStatus(r *http.Request) int {
	for n := a.failNext.Load(); n > 0; n = a.failNext.Load() {
		if a.failNext.CompareAndSwap(n, n-1) {
			return http.StatusInternalServerError
		}
	}
	q := r.URL.Query()
	switch {
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 100 || code > 599 {
			return http.StatusBadRequest
		}
		return code
	case r.URL.Path == "/fail":
		n, code := queryInt(q, "n", 1), queryInt(q, "code", http.StatusServiceUnavailable)
		a.keysMu.Lock()
		a.keys[q.Get("key")]++
		seen := a.keys[q.Get("key")]
		a.keysMu.Unlock()
		if seen <= n {
			return code
		}
	case r.URL.Path == "/delay":
		t := time.NewTimer(time.Duration(queryInt(q, "ms", 0)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	return http.StatusOK
}

// keyCount is how many /fail requests with key the app has seen.
func (a *apps) keyCount(key string) int {
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	return a.keys[key]
}

func queryInt(q url.Values, k string, def int) int {
	if n, err := strconv.Atoi(q.Get(k)); err == nil {
		return n
	}
	return def
}

func (a *apps) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an error status
	}
	defer c.Close()
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, append([]byte(a.name+":"), msg...)); err != nil {
			return
		}
	}
}

// serveTCP echoes every connection's bytes back.
func (a *apps) serveTCP() {
	for {
		c, err := a.tcpLn.Accept()
		if err != nil {
			return
		}
		a.tcpConns.Add(1)
		a.mu.Lock()
		a.conns[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Go(func() {
			defer func() {
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
				c.Close()
			}()
			_, _ = io.Copy(c, c)
		})
	}
}

// duplexServer implements grpc.testing.TestService/FullDuplexCall: every
// request is answered with one response whose payload is "NAME|" + the
// request's payload, and the header metadata "served-by: NAME".
type duplexServer struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (s *duplexServer) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	if err := stream.SendHeader(metadata.Pairs("served-by", s.name)); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		body := fmt.Appendf(nil, "%s|%s", s.name, req.GetPayload().GetBody())
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
}
