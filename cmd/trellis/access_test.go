package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/examples/bookinfo"
)

// bookinfoDir writes the Bookinfo demo's default config to a directory.
func bookinfoDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	names, err := fs.Glob(bookinfo.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := fs.ReadFile(bookinfo.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckAccessCommand(t *testing.T) {
	dir := bookinfoDir(t)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int // 0: success
	}{
		{name: "reviews may GET ratings",
			args:    []string{"analyze", dir, "--check-access", "default/reviews-v1", "default/ratings-v1:9080"},
			wantOut: "ALLOW default/reviews-v1 → default/ratings-v1:9080 GET /: allowed by ALLOW policy default/ratings-viewer\n"},
		{name: "ratings may not call details",
			args:     []string{"analyze", dir, "--check-access", "default/ratings-v1", "default/details-v1"},
			wantOut:  "DENY default/ratings-v1 → default/details-v1:9080 GET /: denied: no ALLOW policy matches (ALLOW policies: default/details-viewer)\n",
			wantCode: 1},
		{name: "method and path",
			args:     []string{"analyze", dir, "--check-access", "default/reviews-v2", "default/ratings-v1", "--method", "DELETE", "--path", "/ratings/1"},
			wantOut:  "DENY default/reviews-v2 → default/ratings-v1:9080 DELETE /ratings/1: denied: no ALLOW policy matches (ALLOW policies: default/ratings-viewer)\n",
			wantCode: 1},
		{name: "unknown workload", args: []string{"analyze", dir, "--check-access", "default/nope", "default/ratings-v1"}, wantCode: 1},
		{name: "bad port", args: []string{"analyze", dir, "--check-access", "default/reviews-v1", "default/ratings-v1:x"}, wantCode: 2},
		{name: "analyze of Bookinfo is clean", args: []string{"analyze", dir}, wantOut: "ok: no problems in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newAnalyzeCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(tc.args[1:])
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			if code != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", code, err, tc.wantCode, out.String())
			}
			if !strings.HasPrefix(out.String(), tc.wantOut) {
				t.Errorf("output:\n%s\nwant it to start with:\n%s", out.String(), tc.wantOut)
			}
		})
	}
}

// TestAnalyzeConvertsGatewayAPI: analyze reads a directory as trellisd
// does, Gateway API resources converted, so it reports what the
// conversion refuses (and access checks see policies that target a
// Gateway).
func TestAnalyzeConvertsGatewayAPI(t *testing.T) {
	dir := bookinfoDir(t)
	gw := `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tcp-gw, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: db, port: 5432, protocol: TCP}
`
	if err := os.WriteFile(filepath.Join(dir, "zz-gateway-api.yaml"), []byte(gw), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newAnalyzeCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{dir})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	_ = cmd.Execute()
	if want := "protocol TCP is not served from the Gateway API yet"; !strings.Contains(out.String(), want) {
		t.Errorf("analyze output lacks the conversion's problem %q:\n%s", want, out.String())
	}
}
