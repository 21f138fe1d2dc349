package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadMesh(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(file, []byte("trustDomain: example.org\npathNormalization: {normalization: MERGE_SLASHES}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name     string
		f        flags
		wantTD   string
		wantPort uint32
	}{
		{name: "flags only", f: flags{proxyHTTPPort: 15081, sec: secFlags{trustDomain: "flag.example"}}, wantTD: "flag.example", wantPort: 15081},
		{name: "file trust domain wins and reaches the CA", f: flags{meshConfig: file, proxyHTTPPort: 15080, sec: secFlags{trustDomain: "cluster.local"}},
			wantTD: "example.org", wantPort: 15080},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			m, err := loadMesh(&f, log)
			if err != nil {
				t.Fatal(err)
			}
			if m.TrustDomain != tc.wantTD || f.sec.trustDomain != tc.wantTD || m.ProxyHTTPPort != tc.wantPort {
				t.Errorf("trust domain %q (CA %q), port %d; want %q, %d", m.TrustDomain, f.sec.trustDomain, m.ProxyHTTPPort, tc.wantTD, tc.wantPort)
			}
		})
	}
	f := flags{meshConfig: filepath.Join(dir, "missing.yaml")}
	if _, err := loadMesh(&f, log); err == nil {
		t.Error("missing mesh config accepted")
	}
}
