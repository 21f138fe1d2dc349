package translator

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

func TestTranslateGolden(t *testing.T) {
	snap := bookinfo(t)
	tests := []struct {
		name  string
		proxy Proxy
	}{
		{"sidecar-productpage", Proxy{ID: "sidecar~127.0.10.1~productpage-v1.default~default.svc.cluster.local", Type: Sidecar, Namespace: "default", Name: "productpage-v1", Address: "127.0.10.1"}},
		{"sidecar-reviews-default-sidecar", Proxy{Type: Sidecar, Namespace: "default", Name: "reviews-v1"}},
		{"sidecar-other-namespace-no-sidecar", Proxy{Type: Sidecar, Namespace: "other", Name: "nobody", Address: "127.0.50.1"}},
		{"gateway", Proxy{Type: Router, Namespace: "istio-system", Name: "istio-ingressgateway"}},
		{"proxyless", Proxy{Type: Proxyless, Namespace: "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(snap, tt.proxy)
			validateAll(t, res)
			got := goldenJSON(t, res)
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestTranslateDeterministic(t *testing.T) {
	snap := bookinfo(t)
	p := Proxy{Type: Sidecar, Namespace: "default", Name: "productpage-v1"}
	first := Translate(snap, p)
	for i := range 5 {
		if diff := cmp.Diff(first, Translate(snap, p), protocmp.Transform()); diff != "" {
			t.Fatalf("run %d differs (-first +now):\n%s", i, diff)
		}
	}
}
