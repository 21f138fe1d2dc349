package bookinfo

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/config"
)

// writeConfig writes the default files of FS, plus the named extras, into a
// fresh directory, as `trellis demo` does.
func writeConfig(t *testing.T, extras ...string) string {
	t.Helper()
	dir := t.TempDir()
	base, err := fs.Glob(FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range base {
		copyFile(t, name, filepath.Join(dir, name))
	}
	for _, name := range extras {
		copyFile(t, ExtrasDir+"/"+name, filepath.Join(dir, name))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := FS.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigLoads(t *testing.T) {
	baseCount := map[config.Kind]int{
		config.KindServiceEntry:    4,
		config.KindWorkloadEntry:   7,
		config.KindSidecar:         6,
		config.KindDestinationRule: 4,
		config.KindGateway:         1,
		config.KindVirtualService:  1,

		config.KindPeerAuthentication:  1, // security.yaml: STRICT mesh-wide
		config.KindAuthorizationPolicy: 5, // security.yaml: allow-nothing + the call graph
	}
	extras, err := fs.Glob(FS, ExtrasDir+"/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(extras) != 3 {
		t.Fatalf("extras = %v, want 3 files", extras)
	}
	tests := []struct {
		name  string
		extra string
	}{{name: "default"}}
	for _, e := range extras {
		tests = append(tests, struct{ name, extra string }{name: filepath.Base(e), extra: filepath.Base(e)})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			want := map[config.Kind]int{}
			for k, n := range baseCount {
				want[k] = n
			}
			if tc.extra == "" {
				dir = writeConfig(t)
			} else {
				dir = writeConfig(t, tc.extra)
				want[config.KindVirtualService]++
			}
			set, errs := config.LoadDir(dir)
			for _, e := range errs {
				t.Errorf("load: %v", e)
			}
			got := map[config.Kind]int{}
			for _, r := range set.All() {
				got[r.Kind]++
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("resources by kind (-want +got):\n%s", diff)
			}
			if tc.extra != "" && set.Get(config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"}) == nil {
				t.Errorf("%s: no VirtualService default/reviews", tc.extra)
			}
		})
	}
}
