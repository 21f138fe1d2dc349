package imports

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	module   = "github.com/trellis-mesh/trellis"
	proxyCmd = module + "/cmd/trellis-proxy"
)

// forbiddenPrefixes are import-path prefixes trellis-proxy must not depend
// on, with the reason reported when it does.
var forbiddenPrefixes = []struct{ prefix, why string }{
	{"k8s.io/", "Kubernetes client code belongs to the control plane"},
	// sigs.k8s.io/yaml is in go.mod for the config loader: the easiest one to
	// pull in by accident.
	{"sigs.k8s.io/", "Kubernetes YAML helpers belong to the control plane"},
	{"istio.io/", "Istio's API is translated by trellisd; the proxy speaks only xDS"},
	{"github.com/envoyproxy/go-control-plane/pkg/", "go-control-plane's server and cache are the control plane's; the proxy needs only the envoy/ protos"},
}

// graph is `go list -deps` output: every package and its direct imports.
type graph map[string][]string

// violation is one forbidden dependency and how the root reaches it.
type violation struct {
	Pkg   string
	Why   string
	Chain []string // root → … → Pkg
}

func (v violation) String() string {
	return fmt.Sprintf("%s (%s)\n\timported via %s", v.Pkg, v.Why, strings.Join(v.Chain, " → "))
}

// sharedPure lists the packages outside internal/proxy/ that the proxy may
// link: pure libraries with no I/O of the control plane's, shared with the
// CLI (issue 4: the authorization engine is one package that the proxy and
// `trellis analyze` both use). Each must itself pass this check, which the
// graph walk guarantees, since their dependencies are in the proxy's graph.
var sharedPure = []string{
	"internal/authz",      // Envoy RBAC decision engine
	"internal/jwt",        // JWT verification and JWKS caching
	"internal/memlimit",   // GC policy flags, shared with trellisd
	"internal/protocodec", // the ADS stream's gRPC codec, shared with trellisd
}

// check returns every package in g that root must not depend on. A package
// of this module is allowed only if it is root itself or under
// internal/proxy/; others are control-plane code (config, configdir,
// registry, snapshot, translator, xdsserver, …).
func check(g graph, root string) []violation {
	var out []violation
	for _, pkg := range slices.Sorted(maps.Keys(g)) {
		why := forbidden(pkg, root)
		if why == "" {
			continue
		}
		out = append(out, violation{Pkg: pkg, Why: why, Chain: chain(g, root, pkg)})
	}
	return out
}

func forbidden(pkg, root string) string {
	for _, f := range forbiddenPrefixes {
		if strings.HasPrefix(pkg, f.prefix) {
			return f.why
		}
	}
	if pkg == root || !(pkg == module || strings.HasPrefix(pkg, module+"/")) {
		return ""
	}
	if strings.HasPrefix(pkg, module+"/internal/proxy/") {
		return ""
	}
	for _, shared := range sharedPure {
		if pkg == module+"/"+shared {
			return ""
		}
	}
	return "only internal/proxy/... of this module may be linked into the proxy"
}

// chain returns a shortest import path from root to pkg (breadth first).
func chain(g graph, root, pkg string) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == pkg {
			var path []string
			for p := pkg; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, next := range g[cur] {
			if _, ok := prev[next]; !ok {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return []string{root, "?", pkg}
}

// goListDeps runs `go list -deps` on pkg from the module root.
func goListDeps(t *testing.T, pkg string) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, pkg)
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			g[fields[0]] = fields[1:]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestProxyImports fails when cmd/trellis-proxy links in control-plane code,
// Kubernetes, Istio's API or go-control-plane's server packages.
func TestProxyImports(t *testing.T) {
	g := goListDeps(t, proxyCmd)
	if _, ok := g[proxyCmd]; !ok {
		t.Fatalf("go list -deps %s did not list the command itself; got %d packages", proxyCmd, len(g))
	}
	for _, v := range check(g, proxyCmd) {
		t.Errorf("trellis-proxy depends on %v", v)
	}
}

// TestCheck runs the rules on hand-made graphs.
func TestCheck(t *testing.T) {
	const root = proxyCmd
	tests := []struct {
		name string
		g    graph
		want []violation
	}{
		{
			name: "proxy packages, protos and std are fine",
			g: graph{
				root:                                 {module + "/internal/proxy/xdsclient", "net/http"},
				module + "/internal/proxy/xdsclient": {"github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3", "google.golang.org/grpc"},
				"github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3": nil,
				"google.golang.org/grpc": nil,
				"net/http":               nil,
			},
		},
		{
			name: "control-plane package through a proxy package",
			g: graph{
				root:                               {module + "/internal/proxy/compile"},
				module + "/internal/proxy/compile": {module + "/internal/translator"},
				module + "/internal/translator":    nil,
			},
			want: []violation{{
				Pkg:   module + "/internal/translator",
				Why:   "only internal/proxy/... of this module may be linked into the proxy",
				Chain: []string{root, module + "/internal/proxy/compile", module + "/internal/translator"},
			}},
		},
		{
			name: "internal/proxy prefix must be a directory",
			g: graph{
				root:                             {module + "/internal/proxyconfig"},
				module + "/internal/proxyconfig": nil,
			},
			want: []violation{{
				Pkg:   module + "/internal/proxyconfig",
				Why:   "only internal/proxy/... of this module may be linked into the proxy",
				Chain: []string{root, module + "/internal/proxyconfig"},
			}},
		},
		{
			name: "istio, kubernetes and go-control-plane server",
			g: graph{
				root:                         {"istio.io/api/networking/v1", "sigs.k8s.io/yaml", "github.com/envoyproxy/go-control-plane/pkg/cache/v3", "k8s.io/apimachinery/pkg/types"},
				"istio.io/api/networking/v1": nil,
				"sigs.k8s.io/yaml":           nil,
				"github.com/envoyproxy/go-control-plane/pkg/cache/v3": nil,
				"k8s.io/apimachinery/pkg/types":                       nil,
			},
			want: []violation{
				{Pkg: "github.com/envoyproxy/go-control-plane/pkg/cache/v3", Why: forbiddenPrefixes[3].why, Chain: []string{root, "github.com/envoyproxy/go-control-plane/pkg/cache/v3"}},
				{Pkg: "istio.io/api/networking/v1", Why: forbiddenPrefixes[2].why, Chain: []string{root, "istio.io/api/networking/v1"}},
				{Pkg: "k8s.io/apimachinery/pkg/types", Why: forbiddenPrefixes[0].why, Chain: []string{root, "k8s.io/apimachinery/pkg/types"}},
				{Pkg: "sigs.k8s.io/yaml", Why: forbiddenPrefixes[1].why, Chain: []string{root, "sigs.k8s.io/yaml"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, check(tc.g, root)); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	}
}
