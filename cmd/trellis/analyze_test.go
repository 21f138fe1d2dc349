package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAnalyzeDir(t *testing.T) {
	const svc = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ratings}\n" +
		"spec: {hosts: [ratings.default.svc.cluster.local], ports: [{number: 9080, name: http}], resolution: STATIC}\n"
	const subsetNoRule = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\n" +
		"spec: {hosts: [ratings], http: [{route: [{destination: {host: ratings, subset: v1}}]}]}\n"
	const unreachable = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\n" +
		"spec: {hosts: [ratings], http: [{route: [{destination: {host: ratings}}]}, {route: [{destination: {host: ratings}}]}]}\n"
	cases := []struct {
		name     string
		files    map[string]string
		strict   bool
		wantOut  []string // substrings, in order
		wantErr  string
		wantCode int
	}{
		{name: "clean", files: map[string]string{"svc.yaml": svc}, wantOut: []string{"ok: no problems in 1 resource"}},
		{name: "error exits 1", files: map[string]string{"svc.yaml": svc, "vs.yaml": subsetNoRule},
			wantOut: []string{"Error [TRL0101] DIR/vs.yaml:1: VirtualService default/ratings: spec.http[0].route[0].destination.subset:", "(fix: add a DestinationRule"},
			wantErr: "1 error, 0 warnings", wantCode: 1},
		{name: "warning exits 0", files: map[string]string{"svc.yaml": svc, "vs.yaml": unreachable},
			wantOut: []string{"Warning [TRL0104]", "0 errors, 1 warning"}},
		{name: "warning with --strict exits 1", files: map[string]string{"svc.yaml": svc, "vs.yaml": unreachable}, strict: true,
			wantOut: []string{"Warning [TRL0104]"}, wantErr: "0 errors, 1 warning", wantCode: 1},
		{name: "validation errors are findings", files: map[string]string{"bad.yaml": "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: c}\nspec: {weight: 1}\n"},
			wantOut: []string{"Error [TRL0001] DIR/bad.yaml:4: spec.address: WorkloadEntry default/c address is required"},
			wantErr: "1 error, 0 warnings", wantCode: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := analyzeDir(&out, dir, tc.strict)
			got := strings.ReplaceAll(out.String(), dir, "DIR")
			rest := got
			for _, w := range tc.wantOut {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("analyzeDir = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr || exitCode(err) != tc.wantCode {
				t.Errorf("analyzeDir = %v (code %d), want %q (code %d)", err, exitCode(err), tc.wantErr, tc.wantCode)
			}
		})
	}
}
