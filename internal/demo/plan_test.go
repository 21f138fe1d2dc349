package demo

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/api/networking/v1"

	bookinfoconfig "github.com/trellis-mesh/trellis/examples/bookinfo"
	"github.com/trellis-mesh/trellis/internal/config"
)

// TestPlanAddresses pins the plan to docs/local-mesh.md.
func TestPlanAddresses(t *testing.T) {
	type entry struct{ ID, Proxy, App string }
	var got []entry
	for _, w := range Plan() {
		app := ""
		if w.AppAddr.IsValid() {
			app = w.AppAddr.String()
		}
		got = append(got, entry{w.ID(), w.Proxy.String(), app})
	}
	want := []entry{
		{"istio-system/istio-ingressgateway", "127.0.0.1", ""},
		{"default/productpage-v1", "127.0.10.1", "127.0.20.1:9080"},
		{"default/details-v1", "127.0.10.2", "127.0.20.2:9080"},
		{"default/reviews-v1", "127.0.10.3", "127.0.20.3:9080"},
		{"default/reviews-v2", "127.0.10.4", "127.0.20.4:9080"},
		{"default/reviews-v3", "127.0.10.5", "127.0.20.5:9080"},
		{"default/ratings-v1", "127.0.10.6", "127.0.20.6:9080"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

// TestPlanMatchesConfig checks that the processes the demo starts are the
// ones the embedded configuration describes: a WorkloadEntry per proxy at
// its address, and a Sidecar per app whose defaultEndpoint is where the app
// listens.
func TestPlanMatchesConfig(t *testing.T) {
	dir := t.TempDir()
	names, err := fs.Glob(bookinfoconfig.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		data, err := bookinfoconfig.FS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, errs := config.LoadDir(dir)
	for _, e := range errs {
		t.Errorf("load: %v", e)
	}
	for _, w := range Plan() {
		t.Run(w.Name, func(t *testing.T) {
			r := set.Get(config.Key{Kind: config.KindWorkloadEntry, Namespace: w.Namespace, Name: w.Name})
			if r == nil {
				t.Fatalf("no WorkloadEntry %s", w.ID())
			}
			we := r.Spec.(*networkingv1.WorkloadEntry)
			if we.GetAddress() != w.Proxy.String() {
				t.Errorf("WorkloadEntry address %q, plan %s", we.GetAddress(), w.Proxy)
			}
			if w.Gateway {
				return
			}
			// Every demo workload runs a proxy: auto mTLS reaches it (examples/bookinfo/security.yaml).
			wantLabels := map[string]string{"app": w.App, "version": w.Version, "security.istio.io/tlsMode": "istio"}
			if diff := cmp.Diff(wantLabels, we.GetLabels()); diff != "" {
				t.Errorf("WorkloadEntry labels (-want +got):\n%s", diff)
			}
			var endpoints []string
			for _, sr := range set.List(config.KindSidecar) {
				sc := sr.Spec.(*networkingv1.Sidecar)
				if !selects(sc.GetWorkloadSelector().GetLabels(), we.GetLabels()) {
					continue
				}
				for _, in := range sc.GetIngress() {
					endpoints = append(endpoints, in.GetDefaultEndpoint())
				}
			}
			if diff := cmp.Diff([]string{w.AppAddr.String()}, endpoints); diff != "" {
				t.Errorf("defaultEndpoints of the Sidecars selecting %s (-plan +config):\n%s", w.ID(), diff)
			}
		})
	}
}

// selects reports whether every selector label is among labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range maps.All(selector) {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}
