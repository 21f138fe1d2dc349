package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	withID := t.TempDir()
	if err := os.MkdirAll(filepath.Join(withID, "tokens", "default"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(withID, "tokens", "default", "reviews-v1"), filepath.Join(withID, "root-cert.pem")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	noID := t.TempDir()
	token := filepath.Join(withID, "tokens", "default", "reviews-v1")
	root := filepath.Join(withID, "root-cert.pem")
	tests := []struct {
		name    string
		args    []string
		want    connPlan
		wantErr string
	}{
		{name: "identity found: secure xDS on 15012",
			args: []string{"--data-dir", withID},
			want: connPlan{identity: true, caAddr: "127.0.0.1:15012", tokenFile: token, caRoot: root, xds: "127.0.0.1:15012", xdsTLS: true}},
		{name: "no identity: plain text on 15010",
			args: []string{"--data-dir", noID},
			want: connPlan{caAddr: "127.0.0.1:15012", tokenFile: filepath.Join(noID, "tokens", "default", "reviews-v1"),
				caRoot: filepath.Join(noID, "root-cert.pem"), xds: "127.0.0.1:15010"}},
		{name: "--xds-plaintext",
			args: []string{"--data-dir", withID, "--xds-plaintext"},
			want: connPlan{identity: true, caAddr: "127.0.0.1:15012", tokenFile: token, caRoot: root, xds: "127.0.0.1:15010"}},
		{name: "explicit --xds on 15010 is plain text, CA on its host",
			args: []string{"--data-dir", withID, "--xds", "127.0.5.1:15010"},
			want: connPlan{identity: true, caAddr: "127.0.5.1:15012", tokenFile: token, caRoot: root, xds: "127.0.5.1:15010"}},
		{name: "explicit secure --xds is also the CA",
			args: []string{"--data-dir", withID, "--xds", "127.0.5.1:16012"},
			want: connPlan{identity: true, caAddr: "127.0.5.1:16012", tokenFile: token, caRoot: root, xds: "127.0.5.1:16012", xdsTLS: true}},
		{name: "explicit --ca-addr",
			args: []string{"--data-dir", withID, "--ca-addr", "127.0.9.9:1"},
			want: connPlan{identity: true, caAddr: "127.0.9.9:1", tokenFile: token, caRoot: root, xds: "127.0.9.9:1", xdsTLS: true}},
		{name: "explicit token file must exist",
			args: []string{"--data-dir", noID, "--join-token-file", filepath.Join(noID, "nope")}, wantErr: "--join-token-file"},
		{name: "token without root",
			args: []string{"--data-dir", withID, "--ca-root", filepath.Join(noID, "nope")}, wantErr: "--ca-root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFlags(append([]string{"--workload", "default/reviews-v1"}, tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			got, err := plan(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(connPlan{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
