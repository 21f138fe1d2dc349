package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateDir(t *testing.T) {
	good := "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 127.0.0.1}\n"
	cases := []struct {
		name     string
		files    map[string]string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{
			name:    "ok",
			files:   map[string]string{"a.yaml": good, "b.yaml": "# empty\n"},
			wantOut: "ok: 1 resource in 2 files\n",
		},
		{
			name: "errors",
			files: map[string]string{
				"a.yaml": good,
				"b.yaml": good,
				"c.yaml": "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: c}\nspec: {weight: 1}\n",
			},
			wantOut: "DIR/b.yaml:1: WorkloadEntry default/a: duplicate resource: already defined at DIR/a.yaml:1\n" +
				"DIR/c.yaml:4: WorkloadEntry default/c: spec.address: address is required\n",
			wantErr:  "2 errors in 2 files",
			wantCode: 1,
		},
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
			err := validateDir(&out, dir)
			got := bytes.ReplaceAll(out.Bytes(), []byte(dir), []byte("DIR"))
			if diff := cmp.Diff(tc.wantOut, string(got)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("validateDir = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr || exitCode(err) != tc.wantCode {
				t.Errorf("validateDir = %v (code %d), want %q (code %d)", err, exitCode(err), tc.wantErr, tc.wantCode)
			}
		})
	}
}
