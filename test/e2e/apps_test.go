package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

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
	a := &apps{name: name, conns: map[net.Conn]struct{}{}}
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
// each message with the app's name.
func (a *apps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.httpRequests.Add(1)
	if r.URL.Path == "/ws" {
		a.serveWebSocket(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echoReply{
		Name: a.name, Proto: r.ProtoMajor, Method: r.Method, Path: r.URL.Path,
		Host: r.Host, Remote: r.RemoteAddr, Headers: r.Header,
	})
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
