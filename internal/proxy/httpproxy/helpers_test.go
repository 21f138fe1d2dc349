package httpproxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// seen is what the echo backend reports about the request it received.
type seen struct {
	Backend string
	Method  string
	Path    string
	RawPath string
	Query   string
	Host    string
	Proto   string
	Header  http.Header
	Body    string
}

// echo is an upstream that answers with a JSON description of the request.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(seen{
			Backend: name, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery,
			Host: r.Host, Proto: r.Proto, Header: r.Header, Body: string(b),
		})
	})
}

// backend starts a loopback server speaking HTTP/1.1 and h2c prior
// knowledge and returns its endpoint.
func backend(t testing.TB, h http.Handler) runtime.Endpoint {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s.Config.Protocols = &p
	s.Start()
	t.Cleanup(s.Close)
	return endpointOf(t, s.Listener.Addr().String())
}

func endpointOf(t testing.TB, addr string) runtime.Endpoint {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("parse %q: %v", addr, err)
	}
	return runtime.Endpoint{Host: ap.Addr().String(), Port: ap.Port(), Weight: 1, Healthy: true}
}

// closedEndpoint returns a loopback address with nothing listening.
func closedEndpoint(t testing.TB) runtime.Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := endpointOf(t, l.Addr().String())
	_ = l.Close()
	return ep
}

func cluster(name string, proto runtime.Protocol, eps ...runtime.Endpoint) *runtime.Cluster {
	return &runtime.Cluster{Name: name, Protocol: proto, Endpoints: eps}
}

func fwd(clusters ...string) *runtime.ForwardAction {
	f := &runtime.ForwardAction{}
	for _, c := range clusters {
		f.Clusters = append(f.Clusters, runtime.WeightedCluster{Name: c, Weight: 1})
	}
	return f
}

// config returns a config with one HTTP listener "l" using route table
// "rt" with the given virtual hosts.
func config(clusters []*runtime.Cluster, vhosts ...*runtime.VirtualHost) *runtime.Config {
	cfg := &runtime.Config{
		Version: "1",
		Listeners: []*runtime.Listener{{
			Name: "l", Address: netip.MustParseAddrPort("127.0.0.1:1"), Kind: runtime.ListenerHTTP,
			HTTP: &runtime.HTTPListener{RouteName: "rt", WebSocket: true, AbsoluteURL: true},
		}},
		Routes:   map[string]*runtime.RouteTable{"rt": {Name: "rt", VirtualHosts: vhosts}},
		Clusters: map[string]*runtime.Cluster{},
	}
	for _, c := range clusters {
		cfg.Clusters[c.Name] = c
	}
	return cfg
}

// newHandler builds a handler over cfg's first listener.
func newHandler(t testing.TB, cfg *runtime.Config, opts Options) *Handler {
	t.Helper()
	pools := NewPools()
	t.Cleanup(func() { _ = pools.Close() })
	h := NewHandler(opts)
	h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, nil), cfg.Listeners[0])
	return h
}

// serve runs h on a loopback server speaking HTTP/1.1 and h2c.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	return backendURL(t, h)
}

func backendURL(t testing.TB, h http.Handler) string {
	ep := backend(t, h)
	return "http://" + ep.Host + ":" + strconv.Itoa(int(ep.Port))
}

func decode(t testing.TB, body io.Reader) seen {
	t.Helper()
	var s seen
	if err := json.NewDecoder(body).Decode(&s); err != nil {
		t.Fatalf("decode upstream echo: %v", err)
	}
	return s
}
