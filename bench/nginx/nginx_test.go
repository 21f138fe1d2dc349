package nginx

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	got, err := Hop{Dir: "/run/x", Root: true, Routes: []Route{
		{Name: "http", Listen: "127.0.153.2:8080", Upstream: "127.0.150.1:8080"},
		{Name: "grpc", Listen: "127.0.153.2:8079", Upstream: "127.0.150.1:8079", H2: true}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"user root;", "worker_processes 1;", "pid /run/x/nginx.pid;", "keepalive 64;",
		"listen 127.0.153.2:8080;", "proxy_set_header Connection \"\";", "listen 127.0.153.2:8079 http2;",
		"grpc_pass grpc://up_grpc;"} {
		if !strings.Contains(got, w) {
			t.Errorf("config lacks %q:\n%s", w, got)
		}
	}
	tls := &TLS{CA: "/ca.pem", Cert: "/c.crt", Key: "/c.key", ServerName: "hop"}
	routes := []Route{{Name: "http", Listen: "a:1", Upstream: "b:1"}, {Name: "grpc", Listen: "a:2", Upstream: "b:2", H2: true}}
	for _, tc := range []struct {
		name      string
		hop       Hop
		want, not []string
	}{
		{"serving mutual TLS", Hop{Dir: "/d", Serve: tls, Routes: routes},
			[]string{"listen a:1 ssl;", "listen a:2 ssl http2;", "ssl_verify_client on;", "ssl_client_certificate /ca.pem;",
				"proxy_pass http://up_http;", "grpc_pass grpc://up_grpc;"},
			[]string{"proxy_ssl", "grpc_ssl"}},
		{"dialing mutual TLS", Hop{Dir: "/d", Dial: tls, Routes: routes},
			[]string{"listen a:1;", "listen a:2 http2;", "proxy_pass https://up_http;", "proxy_ssl_verify on;",
				"proxy_ssl_name hop;", "grpc_pass grpcs://up_grpc;", "grpc_ssl_certificate /c.crt;"},
			[]string{"ssl_verify_client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.hop.Render()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("config lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("config has %q:\n%s", n, got)
				}
			}
		})
	}
	if _, err := (Hop{}).Render(); err == nil {
		t.Error("Render without Dir succeeded")
	}
}
