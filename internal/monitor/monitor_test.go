package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/xdsserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilot_services", Help: "h"})
	g.Set(3)
	reg.MustRegister(g)
	var ready atomic.Bool
	set := config.NewSet([]*config.Resource{{
		Kind:   config.KindServiceEntry,
		Meta:   config.Meta{Name: "reviews", Namespace: "default"},
		Spec:   &networkingv1.ServiceEntry{Hosts: []string{"reviews.default.svc.cluster.local"}},
		Origin: config.Origin{File: "services.yaml", Line: 4},
	}})
	h := Handler(Options{
		Gatherer: reg,
		Ready:    ready.Load,
		Syncz: func() []xdsserver.ProxyStatus {
			return []xdsserver.ProxyStatus{{NodeID: "sidecar~127.0.10.1~a.default~default.svc.cluster.local"}}
		},
		Config: func() (*config.Set, uint64) { return set, 7 },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	t.Run("ready", func(t *testing.T) {
		if code, _ := get("/ready"); code != http.StatusServiceUnavailable {
			t.Errorf("before ready: %d, want 503", code)
		}
		ready.Store(true)
		if code, _ := get("/ready"); code != http.StatusOK {
			t.Errorf("after ready: %d, want 200", code)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		code, body := get("/metrics")
		if code != http.StatusOK || !strings.Contains(body, "pilot_services 3") {
			t.Errorf("/metrics = %d:\n%s", code, body)
		}
	})
	t.Run("syncz", func(t *testing.T) {
		code, body := get("/debug/syncz")
		var got []xdsserver.ProxyStatus
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusOK {
			t.Fatalf("/debug/syncz = %d %v:\n%s", code, err, body)
		}
		if len(got) != 1 || !strings.Contains(got[0].NodeID, "a.default") {
			t.Errorf("syncz = %+v", got)
		}
	})
	t.Run("configz", func(t *testing.T) {
		_, body := get("/debug/configz")
		var got Configz
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("decode: %v\n%s", err, body)
		}
		want := Configz{Version: 7, Resources: []Resource{{
			Kind: "ServiceEntry", Namespace: "default", Name: "reviews", Origin: "services.yaml:4",
			Spec: json.RawMessage(`{"hosts":["reviews.default.svc.cluster.local"]}`),
		}}}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b json.RawMessage) bool {
			var ca, cb bytes.Buffer
			return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && ca.String() == cb.String()
		})); diff != "" {
			t.Errorf("configz (-want +got):\n%s", diff)
		}
	})
	t.Run("empty config", func(t *testing.T) {
		rec := httptest.NewRecorder()
		Handler(Options{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/configz", nil))
		if !strings.Contains(rec.Body.String(), `"resources": []`) {
			t.Errorf("empty configz = %s", rec.Body.String())
		}
	})
}

func TestServeShutsDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, lis, Handler(Options{Ready: func() bool { return true }})) }()
	resp, err := http.Get("http://" + lis.Addr().String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ready = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
