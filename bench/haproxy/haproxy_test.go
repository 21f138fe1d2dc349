package haproxy

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		hop  Hop
		want []string
		not  []string
	}{
		{"default threads, http and h2", Hop{Routes: []Route{
			{Name: "http", Listen: "127.0.152.2:8080", Upstream: "127.0.150.1:8080", Mode: "http"},
			{Name: "grpc", Listen: "127.0.152.2:8079", Upstream: "127.0.150.1:8079", Mode: "http", H2: true}}},
			[]string{"bind 127.0.152.2:8080\n", "server s1 127.0.150.1:8079 proto h2", "http-reuse always", "option http-keep-alive"},
			[]string{"nbthread"}},
		{"one thread tcp", Hop{Threads: 1, Routes: []Route{{Name: "tcp", Listen: "a:1", Upstream: "b:2", Mode: "tcp"}}},
			[]string{"nbthread 1", "mode tcp", "server s1 b:2\n"}, []string{"option http-keep-alive"}},
		{"serving mutual TLS", Hop{Serve: &TLS{CA: "/ca.pem", Cert: "/server.pem"}, Routes: []Route{
			{Name: "http", Listen: "a:1", Upstream: "b:1", Mode: "http"},
			{Name: "grpc", Listen: "a:2", Upstream: "b:2", Mode: "http", H2: true}}},
			[]string{"bind a:1 ssl crt /server.pem ca-file /ca.pem verify required\n",
				"bind a:2 ssl crt /server.pem ca-file /ca.pem verify required alpn h2\n",
				"server s1 b:1\n", "server s1 b:2 proto h2\n"},
			[]string{"verifyhost"}},
		{"dialing mutual TLS", Hop{Dial: &TLS{CA: "/ca.pem", Cert: "/client.pem", ServerName: "hop"}, Routes: []Route{
			{Name: "http", Listen: "a:1", Upstream: "b:1", Mode: "http"},
			{Name: "grpc", Listen: "a:2", Upstream: "b:2", Mode: "http", H2: true}}},
			[]string{"bind a:1\n", "bind a:2 proto h2\n",
				"server s1 b:1 ssl verify required ca-file /ca.pem crt /client.pem verifyhost hop\n",
				"server s1 b:2 ssl verify required ca-file /ca.pem crt /client.pem verifyhost hop alpn h2\n"},
			[]string{"/server.pem"}},
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
}
