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
	if _, err := (Hop{}).Render(); err == nil {
		t.Error("Render without Dir succeeded")
	}
}
