package meshconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

func TestParse(t *testing.T) {
	withDefaults := func(edit func(*snapshot.Mesh)) snapshot.Mesh {
		m := snapshot.DefaultMesh()
		edit(&m)
		return m
	}
	cases := []struct {
		name  string
		yaml  string
		want  snapshot.Mesh
		warns []string
	}{
		{name: "empty", yaml: "", want: snapshot.DefaultMesh()},
		{name: "trust domain and root namespace", yaml: "trustDomain: example.org\nrootNamespace: mesh-root\nproxyHttpPort: 15081",
			want: withDefaults(func(m *snapshot.Mesh) {
				m.TrustDomain, m.RootNamespace, m.ProxyHTTPPort = "example.org", "mesh-root", 15081
			})},
		{name: "path normalization", yaml: "pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}",
			want: withDefaults(func(m *snapshot.Mesh) { m.PathNormalization = snapshot.PathNormalizationDecodeAndMergeSlashes })},
		{name: "path normalization none", yaml: "pathNormalization: {normalization: NONE}",
			want: withDefaults(func(m *snapshot.Mesh) { m.PathNormalization = snapshot.PathNormalizationNone })},
		{name: "registry only", yaml: "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
			want: withDefaults(func(m *snapshot.Mesh) { m.OutboundRegistryOnly = true })},
		{name: "ext authz providers", yaml: `
extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: authz.default.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-user]
    headersToUpstreamOnAllow: [x-authz]
    headersToDownstreamOnDeny: [x-reason]
- name: grpc-authz
  envoyExtAuthzGrpc:
    service: 127.0.0.9
    port: 9000
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
`, want: withDefaults(func(m *snapshot.Mesh) {
			m.ExtensionProviders = []snapshot.ExtAuthzProvider{
				{Name: "http-authz", Service: "authz.default.svc.cluster.local", Port: 8000, Timeout: 2 * time.Second,
					PathPrefix: "/check", FailOpen: true, StatusOnError: 503, IncludeRequestHeaders: []string{"x-user"},
					HeadersToUpstreamOnAllow: []string{"x-authz"}, HeadersToDownstreamOnDeny: []string{"x-reason"}},
				{Name: "grpc-authz", GRPC: true, Service: "127.0.0.9", Port: 9000},
			}
		}), warns: []string{`extensionProviders[2]: provider "zipkin" is not an ext_authz provider; ignored`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, warns, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mesh (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warns, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{name: "unknown field", yaml: "trustDomian: x", want: `unknown field "trustDomian"`},
		{name: "no service", yaml: "extensionProviders: [{name: a, envoyExtAuthzHttp: {port: 80}}]",
			want: "extensionProviders[0].envoyExtAuthzHttp.service: is required"},
		{name: "no port", yaml: "extensionProviders: [{name: a, envoyExtAuthzGrpc: {service: s}}]",
			want: "extensionProviders[0].envoyExtAuthzGrpc.port: must be between 1 and 65535, got 0"},
		{name: "duplicate name", yaml: "extensionProviders: [{name: a, envoyExtAuthzGrpc: {service: s, port: 1}}, {name: a, envoyExtAuthzGrpc: {service: s, port: 1}}]",
			want: `extensionProviders[1].name: "a" is already used by extensionProviders[0]`},
		{name: "bad status", yaml: "extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1, statusOnError: nope}}]",
			want: `extensionProviders[0].envoyExtAuthzHttp.statusOnError: "nope" is not an HTTP status`},
		{name: "relative prefix", yaml: "extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1, pathPrefix: check}}]",
			want: `extensionProviders[0].envoyExtAuthzHttp.pathPrefix: "check" must start with "/"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); !strings.Contains(got, tc.want) {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, []byte("trustDomain: td.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.TrustDomain != "td.example" {
		t.Errorf("TrustDomain = %q", m.TrustDomain)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("trustDomain: a\nextensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1}}]"))
	f.Add([]byte("pathNormalization: {normalization: MERGE_SLASHES}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := Parse(data)
		if err != nil {
			return
		}
		if m.TrustDomain == "" || m.RootNamespace == "" {
			t.Errorf("defaults lost: %+v", m)
		}
		for _, p := range m.ExtensionProviders {
			if p.Name == "" || p.Service == "" || p.Port == 0 {
				t.Errorf("invalid provider accepted: %+v", p)
			}
		}
	})
}
