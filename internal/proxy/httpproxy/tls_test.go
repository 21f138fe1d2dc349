package httpproxy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestRequireTLSRedirects(t *testing.T) {
	all := runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/"}
	cfg := config([]*runtime.Cluster{cluster("a", runtime.HTTP1, backend(t, echo("a")))},
		&runtime.VirtualHost{Name: "secure", Domains: []string{"bookinfo.example.com"}, RequireTLS: true,
			Routes: []*runtime.Route{{Name: "all", Match: all, Forward: fwd("a")}}},
		&runtime.VirtualHost{Name: "open", Domains: []string{"*"}, Routes: []*runtime.Route{{Name: "all", Match: all, Forward: fwd("a")}}},
	)
	h := newHandler(t, cfg, Options{})
	tests := []struct {
		name     string
		host     string
		tls      bool
		code     int
		location string
	}{
		{"plain text redirected", "bookinfo.example.com", false, http.StatusMovedPermanently, "https://bookinfo.example.com/p?q=1"},
		{"tls served", "bookinfo.example.com", true, http.StatusOK, ""},
		{"other host served", "other", false, http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tc.host+"/p?q=1", nil)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || w.Header().Get("Location") != tc.location {
				t.Errorf("got %d Location %q, want %d %q", w.Code, w.Header().Get("Location"), tc.code, tc.location)
			}
		})
	}
}

func TestBlockAllIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config([]*runtime.Cluster{{Name: "BlackHoleCluster"}},
		&runtime.VirtualHost{Name: "block_all", Domains: []string{"*"}, Routes: []*runtime.Route{{
			Name: "block_all", Match: runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/"},
			Direct: &runtime.DirectResponse{Status: http.StatusBadGateway},
		}}})
	pools := NewPools()
	t.Cleanup(func() { _ = pools.Close() })
	h := NewHandler(Options{})
	h.Update(NewConfig(cfg, lb.Build(cfg.Clusters), pools, m), cfg.Listeners[0])
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://unknown.example.org/", nil))
		if w.Code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", w.Code)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "istio_requests_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var kv []string
			for _, l := range mt.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			got = append(got, fmt.Sprintf("%s %v", strings.Join(kv, ","), mt.GetCounter().GetValue()))
		}
	}
	want := []string{"destination_cluster=BlackHoleCluster,reporter=source,response_code=502,response_flags=- 3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("istio_requests_total (-want +got):\n%s", diff)
	}
}
