package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"
	networkingv1 "istio.io/api/networking/v1"
)

func TestLoadDirBookinfo(t *testing.T) {
	set, errs := LoadDir("testdata/bookinfo")
	for _, e := range errs {
		t.Errorf("unexpected error: %v", e)
	}
	if got, want := set.Len(), 16; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	vs := set.Get(Key{Kind: KindVirtualService, Namespace: "default", Name: "reviews"})
	if vs == nil {
		t.Fatal("VirtualService default/reviews missing")
	}
	if got, want := vs.Origin, (Origin{File: filepath.Join("testdata/bookinfo", "routing.yaml"), Line: 1}); got != want {
		t.Errorf("Origin = %v, want %v", got, want)
	}
	spec, ok := vs.Spec.(*networkingv1.VirtualService)
	if !ok {
		t.Fatalf("Spec is %T, want *networkingv1.VirtualService", vs.Spec)
	}
	if got := spec.GetHttp()[1].GetTimeout().AsDuration().String(); got != "5s" {
		t.Errorf("timeout = %s, want 5s", got)
	}
	gw := set.Get(Key{Kind: KindGateway, Namespace: "istio-system", Name: "bookinfo-gateway"})
	if gw == nil {
		t.Fatal("Gateway istio-system/bookinfo-gateway missing")
	}
}

func TestParseDecodesSpec(t *testing.T) {
	data := []byte(`
# leading comment, then an empty document
---
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: reviews
  labels: {team: books}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 1.5s, maxConnections: 10}
  subsets:
  - name: v1
    labels: {version: v1}
`)
	rs, failed, errs := Parse("dr.yaml", data)
	if len(errs) != 0 || len(failed) != 0 || len(rs) != 1 {
		t.Fatalf("Parse = %v, %v, %v; want one resource", rs, failed, errs)
	}
	r := rs[0]
	wantMeta := Meta{Name: "reviews", Namespace: DefaultNamespace, Labels: map[string]string{"team": "books"}}
	if diff := cmp.Diff(wantMeta, r.Meta, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Meta mismatch (-want +got):\n%s", diff)
	}
	if got, want := r.Origin, (Origin{File: "dr.yaml", Line: 5}); got != want {
		t.Errorf("Origin = %v, want %v", got, want)
	}
	want := &networkingv1.DestinationRule{
		Host: "reviews",
		TrafficPolicy: &networkingv1.TrafficPolicy{ConnectionPool: &networkingv1.ConnectionPoolSettings{
			Tcp: &networkingv1.ConnectionPoolSettings_TCPSettings{MaxConnections: 10, ConnectTimeout: durationOf(t, "1.5s")},
		}},
		Subsets: []*networkingv1.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
	}
	if diff := cmp.Diff(want, r.Spec, protocmp.Transform()); diff != "" {
		t.Errorf("Spec mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDocumentErrors(t *testing.T) {
	cases := []struct {
		name       string
		yaml       string
		want       []string
		wantFailed []Key
		unreadable bool
	}{
		{
			// yaml.v3 reports the line where the broken construct's context
			// starts, as it counts it.
			name:       "broken YAML",
			yaml:       "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: [x\n",
			want:       []string{"t.yaml:3: invalid YAML: did not find expected ',' or ']'"},
			unreadable: true,
		},
		{
			name: "unknown kind",
			yaml: "apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {name: x}\nspec: {}\n",
			want: []string{`t.yaml:2: kind: unknown kind "EnvoyFilter" (Trellis reads ServiceEntry, WorkloadEntry, WorkloadGroup, VirtualService, DestinationRule, Gateway, Sidecar, PeerAuthentication, RequestAuthentication, AuthorizationPolicy)`},
		},
		{
			name: "missing kind",
			yaml: "apiVersion: networking.istio.io/v1\nmetadata: {name: x}\n",
			want: []string{"t.yaml:1: kind: is required"},
		},
		{
			name: "missing metadata.name",
			yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  namespace: a\nspec: {}\n",
			want: []string{"t.yaml:4: metadata.name: is required", "t.yaml:5: spec.servers: at least one server is required"},
		},
		{
			name: "missing metadata",
			yaml: "apiVersion: networking.istio.io/v1\nkind: Gateway\nspec: {}\n",
			want: []string{"t.yaml:1: metadata.name: is required", "t.yaml:3: spec.servers: at least one server is required"},
		},
		{
			name:       "missing apiVersion",
			yaml:       "kind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.1}\n",
			want:       []string{"t.yaml:1: WorkloadEntry default/w: apiVersion: is required (for example networking.istio.io/v1)"},
			wantFailed: []Key{{Kind: KindWorkloadEntry, Namespace: "default", Name: "w"}},
		},
		{
			name:       "unsupported apiVersion",
			yaml:       "apiVersion: networking.istio.io/v2\nkind: WorkloadEntry\nmetadata: {name: w, namespace: ns}\nspec: {address: 127.0.0.1}\n",
			want:       []string{`t.yaml:1: WorkloadEntry ns/w: apiVersion: unsupported apiVersion "networking.istio.io/v2" for WorkloadEntry (want networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)`},
			wantFailed: []Key{{Kind: KindWorkloadEntry, Namespace: "ns", Name: "w"}},
		},
		{
			name: "invalid name",
			yaml: "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: My_W}\nspec: {address: 127.0.0.1}\n",
			want: []string{`t.yaml:3: metadata.name: "My_W" is not a valid DNS name (lower-case letters, digits, '-' and '.')`},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: []string{"t.yaml:1: a document must be a mapping with apiVersion, kind, metadata and spec, got a list"},
		},
		{
			name:       "unknown top-level field",
			yaml:       "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspecs: {address: 127.0.0.1}\n",
			want:       []string{`t.yaml:4: WorkloadEntry default/w: specs: unknown field "specs" (a document has apiVersion, kind, metadata and spec)`, "t.yaml:1: WorkloadEntry default/w: spec.address: address is required"},
			wantFailed: []Key{{Kind: KindWorkloadEntry, Namespace: "default", Name: "w"}},
		},
		{
			name: "errors in the second document only",
			yaml: "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 127.0.0.1}\n---\n" +
				"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: b}\nspec: {address: 127.0.0.1, weight: -1}\n",
			want:       []string{"t.yaml:9: WorkloadEntry default/b: spec.weight: must not be negative, got -1"},
			wantFailed: []Key{{Kind: KindWorkloadEntry, Namespace: "default", Name: "b"}},
		},
		{
			name: "only empty documents",
			yaml: "---\n# nothing\n---\n\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := ParseFile("t.yaml", []byte(tc.yaml))
			if diff := cmp.Diff(tc.want, errStrings(f.Errors)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFailed, f.Failed); diff != "" {
				t.Errorf("Failed mismatch (-want +got):\n%s", diff)
			}
			if f.Unreadable != tc.unreadable {
				t.Errorf("Unreadable = %v, want %v", f.Unreadable, tc.unreadable)
			}
		})
	}
}

func TestLoadDirDuplicatesAndFiltering(t *testing.T) {
	dir := t.TempDir()
	we := func(name, addr string) string {
		return "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: " + name + "}\nspec: {address: " + addr + "}\n"
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", we("one", "127.0.0.1"))
	write("b.yml", we("two", "127.0.0.2")+"---\n"+we("two", "127.0.0.3"))
	write("c.yaml", we("one", "127.0.0.4"))
	write(".hidden.yaml", we("hidden", "127.0.0.5"))
	write("notes.txt", "not yaml at all: [")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join("sub.yaml", "d.yaml"), we("nested", "127.0.0.6"))

	set, errs := LoadDir(dir)
	want := []string{
		filepath.Join(dir, "b.yml") + ":6: WorkloadEntry default/two: duplicate resource: already defined at " + filepath.Join(dir, "b.yml") + ":1",
		filepath.Join(dir, "c.yaml") + ":1: WorkloadEntry default/one: duplicate resource: already defined at " + filepath.Join(dir, "a.yaml") + ":1",
	}
	if diff := cmp.Diff(want, errStrings(errs)); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
	var names []string
	for _, r := range set.All() {
		names = append(names, r.Meta.Name+"@"+r.Spec.(*networkingv1.WorkloadEntry).GetAddress())
	}
	if diff := cmp.Diff([]string{"one@127.0.0.1", "two@127.0.0.2"}, names); diff != "" {
		t.Errorf("resources mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadDirMissing(t *testing.T) {
	set, errs := LoadDir(filepath.Join(t.TempDir(), "nope"))
	if set.Len() != 0 || len(errs) != 1 {
		t.Fatalf("LoadDir = %d resources, %v; want none and one error", set.Len(), errs)
	}
}
