package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// proxy serves h on a loopback server configured as the listener manager
// configures it and returns its address.
func proxy(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config = NewServer(h, ServerOptions{})
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func anyHost(clusterName string, f func(*runtime.ForwardAction)) *runtime.VirtualHost {
	a := fwd(clusterName)
	if f != nil {
		f(a)
	}
	return &runtime.VirtualHost{Name: "any", Domains: []string{"*"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: a}}}
}

func h2cClient(t testing.TB) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func h1Client(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestDownstreamProtocols(t *testing.T) {
	up := backend(t, echo("up"))
	tests := []struct {
		name      string
		client    func(testing.TB) *http.Client
		upstream  runtime.Protocol
		wantProto string
	}{
		{"h1 to h1", h1Client, runtime.HTTP1, "HTTP/1.1"},
		{"h1 to h2c", h1Client, runtime.HTTP2, "HTTP/2.0"},
		{"h2c to h1", h2cClient, runtime.HTTP1, "HTTP/1.1"},
		{"h2c to h2c", h2cClient, runtime.HTTP2, "HTTP/2.0"},
		{"h1 to downstream protocol", h1Client, runtime.UseDownstream, "HTTP/1.1"},
		{"h2c to downstream protocol", h2cClient, runtime.UseDownstream, "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config([]*runtime.Cluster{cluster("c", tt.upstream, up)}, anyHost("c", nil))
			addr := proxy(t, newHandler(t, cfg, Options{}))
			resp, err := tt.client(t).Get("http://" + addr + "/p")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if s := decode(t, resp.Body); s.Proto != tt.wantProto {
				t.Errorf("upstream saw %s, want %s", s.Proto, tt.wantProto)
			}
		})
	}
}

func TestAbsoluteURL(t *testing.T) {
	cfg := config([]*runtime.Cluster{cluster("c", runtime.HTTP1, backend(t, echo("c")))},
		&runtime.VirtualHost{Name: "svc", Domains: []string{"svc:9080"}, Routes: []*runtime.Route{{Name: "r", Match: slash(), Forward: fwd("c")}}})
	addr := proxy(t, newHandler(t, cfg, Options{}))
	proxyURL, _ := url.Parse("http://" + addr)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://svc:9080/x?q=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := decode(t, resp.Body)
	if s.Host != "svc:9080" || s.Path != "/x" || s.Query != "q=1" {
		t.Errorf("upstream saw host %q path %q query %q; want svc:9080 /x q=1", s.Host, s.Path, s.Query)
	}
}

// duplex echoes every FullDuplexCall message back as it arrives.
type duplex struct {
	testgrpc.UnimplementedTestServiceServer
}

func (duplex) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func (duplex) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func grpcBackend(t testing.TB) runtime.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, duplex{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return endpointOf(t, l.Addr().String())
}

func TestGRPCBidiStream(t *testing.T) {
	for _, proto := range []runtime.Protocol{runtime.HTTP2, runtime.UseDownstream} {
		t.Run(fmt.Sprint("upstream protocol ", proto), func(t *testing.T) {
			cfg := config([]*runtime.Cluster{cluster("grpc", proto, grpcBackend(t))}, anyHost("grpc", func(f *runtime.ForwardAction) {
				f.Retry = &runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure", "refused-stream", "unavailable"}}
			}))
			addr := proxy(t, newHandler(t, cfg, Options{}))
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := testgrpc.NewTestServiceClient(conn)
			if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
				t.Fatalf("EmptyCall: %v", err)
			}
			stream, err := client.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Each reply must arrive before the next message is sent: the
			// proxy must stream both ways, not buffer.
			for i := range 5 {
				msg := fmt.Sprintf("ping %d", i)
				if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				resp, err := stream.Recv()
				if err != nil {
					t.Fatalf("recv %d: %v", i, err)
				}
				if got := string(resp.GetPayload().GetBody()); got != msg {
					t.Errorf("reply %d = %q, want %q", i, got, msg)
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("after CloseSend: %v, want EOF (status OK via trailers)", err)
			}
		})
	}
}

func TestGRPCNoHealthyUpstream(t *testing.T) {
	cfg := config([]*runtime.Cluster{cluster("grpc", runtime.HTTP2)}, anyHost("grpc", nil))
	addr := proxy(t, newHandler(t, cfg, Options{}))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{})
	if got := fmt.Sprint(err); got != "rpc error: code = Unavailable desc = no healthy upstream" {
		t.Errorf("EmptyCall error = %s, want Unavailable: no healthy upstream", got)
	}
}

func wsEcho(t testing.TB) runtime.Endpoint {
	up := websocket.Upgrader{}
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
}

func TestWebSocket(t *testing.T) {
	tests := []struct {
		name      string
		allowed   bool
		upstream  runtime.Protocol
		wantError bool
	}{
		{"allowed", true, runtime.HTTP1, false},
		{"allowed over an h2 cluster", true, runtime.HTTP2, false},
		{"not allowed", false, runtime.HTTP1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config([]*runtime.Cluster{cluster("ws", tt.upstream, wsEcho(t))}, anyHost("ws", nil))
			cfg.Listeners[0].HTTP.WebSocket = tt.allowed
			addr := proxy(t, newHandler(t, cfg, Options{}))
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{}}
			c, resp, err := d.Dial("ws://"+addr+"/ws", nil)
			if tt.wantError {
				if err == nil {
					c.Close()
					t.Fatal("dial succeeded, want refusal")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("response %v, want 403", resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 3 {
				msg := fmt.Sprintf("hello %d", i)
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				_, got, err := c.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != msg {
					t.Errorf("echo = %q, want %q", got, msg)
				}
			}
		})
	}
}
