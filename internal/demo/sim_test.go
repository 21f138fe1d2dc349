package demo

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	bookinfoconfig "github.com/trellis-mesh/trellis/examples/bookinfo"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// demoSnapshot loads the embedded config, plus the named extras, as trellisd
// would.
func demoSnapshot(t *testing.T, extras ...string) *snapshot.Snapshot {
	t.Helper()
	dir := t.TempDir()
	names, err := fs.Glob(bookinfoconfig.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range extras {
		names = append(names, bookinfoconfig.ExtrasDir+"/"+e)
	}
	for _, n := range names {
		data, err := bookinfoconfig.FS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(n)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, errs := config.LoadDir(dir)
	for _, e := range errs {
		t.Errorf("load: %v", e)
	}
	return &snapshot.Snapshot{
		Version:  1,
		Config:   set,
		Registry: registry.NewServiceEntrySource().Registry(set),
		Mesh:     snapshot.DefaultMesh(),
	}
}

// TestSimulation checks, Istio style, where the demo's calls go: a call to
// host H path P on listener L of workload W uses route table R and reaches
// clusters C.
func TestSimulation(t *testing.T) {
	tests := []struct {
		name         string
		extras       []string
		workload     Workload
		listener     string // the listener the call arrives on
		host, path   string
		headers      map[string]string
		wantClusters []string
	}{
		{name: "gateway to productpage", workload: Plan()[0], listener: "127.0.0.1_8080",
			host: "127.0.0.1:8080", path: "/productpage",
			wantClusters: []string{"outbound|9080||productpage.default.svc.cluster.local"}},
		{name: "gateway api", workload: Plan()[0], listener: "127.0.0.1_8080",
			host: "127.0.0.1:8080", path: "/api/v1/products/0",
			wantClusters: []string{"outbound|9080||productpage.default.svc.cluster.local"}},
		{name: "productpage calls details by name", workload: Plan()[1], listener: "http_proxy",
			host: "details:9080", path: "/details/0",
			wantClusters: []string{"outbound|9080||details.default.svc.cluster.local"}},
		{name: "productpage calls reviews, round robin", workload: Plan()[1], listener: "http_proxy",
			host: "reviews:9080", path: "/reviews/0",
			wantClusters: []string{"outbound|9080||reviews.default.svc.cluster.local"}},
		{name: "reviews-v3 calls ratings", workload: Plan()[5], listener: "http_proxy",
			host: "ratings:9080", path: "/ratings/0",
			wantClusters: []string{"outbound|9080||ratings.default.svc.cluster.local"}},
		{name: "inbound to the app", workload: Plan()[3], listener: "inbound_127.0.10.3_9080",
			host: "reviews:9080", path: "/reviews/0",
			wantClusters: []string{"inbound|9080||"}},
		{name: "all to v3", extras: []string{"virtual-service-reviews-v3.yaml"}, workload: Plan()[1],
			listener: "http_proxy", host: "reviews:9080", path: "/reviews/0",
			wantClusters: []string{"outbound|9080|v3|reviews.default.svc.cluster.local"}},
		{name: "50/50", extras: []string{"virtual-service-reviews-50-v3.yaml"}, workload: Plan()[1],
			listener: "http_proxy", host: "reviews:9080", path: "/reviews/0",
			wantClusters: []string{"outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080|v3|reviews.default.svc.cluster.local"}},
		{name: "jason to v2", extras: []string{"virtual-service-reviews-jason-v2.yaml"}, workload: Plan()[1],
			listener: "http_proxy", host: "reviews:9080", path: "/reviews/0", headers: map[string]string{"end-user": "jason"},
			wantClusters: []string{"outbound|9080|v2|reviews.default.svc.cluster.local"}},
		{name: "others to v1", extras: []string{"virtual-service-reviews-jason-v2.yaml"}, workload: Plan()[1],
			listener: "http_proxy", host: "reviews:9080", path: "/reviews/0",
			wantClusters: []string{"outbound|9080|v1|reviews.default.svc.cluster.local"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := demoSnapshot(t, tc.extras...)
			typ := translator.Sidecar
			if tc.workload.Gateway {
				typ = translator.Router
			}
			res := translator.Translate(snap, translator.Proxy{
				Type: typ, Namespace: tc.workload.Namespace, Name: tc.workload.Name, Address: tc.workload.Proxy.String(),
			})
			lm, ok := res.Listeners[tc.listener]
			if !ok {
				t.Fatalf("no listener %q; have %v", tc.listener, keys(res.Listeners))
			}
			routeName := rdsName(t, lm.(*listenerv3.Listener))
			rm, ok := res.Routes[routeName]
			if !ok {
				t.Fatalf("listener %s names route table %q, which is missing; have %v", tc.listener, routeName, keys(res.Routes))
			}
			got := simulate(rm.(*routev3.RouteConfiguration), tc.host, tc.path, tc.headers)
			if !slices.Equal(got, tc.wantClusters) {
				t.Fatalf("%s %s%s via %s (%s) reaches %v, want %v", tc.workload.ID(), tc.host, tc.path, tc.listener, routeName, got, tc.wantClusters)
			}
			for _, c := range got {
				if _, ok := res.Clusters[c]; !ok {
					t.Errorf("route names cluster %q, which is missing", c)
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// rdsName returns the route table an HTTP listener's connection manager names.
func rdsName(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3
			if err := f.GetTypedConfig().UnmarshalTo(&hcm); err == nil {
				if rds := hcm.GetRds(); rds != nil {
					return rds.GetRouteConfigName()
				}
				if rc := hcm.GetRouteConfig(); rc != nil {
					return rc.GetName()
				}
			}
		}
	}
	t.Fatalf("listener %s has no HTTP connection manager with routes", l.GetName())
	return ""
}

// simulate picks the virtual host and the first matching route as Envoy
// would, for the subset of matching the demo's config uses (exact and
// wildcard domains, path exact/prefix, exact headers), and returns the
// clusters the route sends to.
func simulate(rc *routev3.RouteConfiguration, host, path string, headers map[string]string) []string {
	var vh *routev3.VirtualHost
	for _, v := range rc.GetVirtualHosts() {
		for _, d := range v.GetDomains() {
			if strings.EqualFold(d, host) {
				vh = v
			}
		}
	}
	if vh == nil {
		for _, v := range rc.GetVirtualHosts() {
			if slices.Contains(v.GetDomains(), "*") {
				vh = v
			}
		}
	}
	if vh == nil {
		return nil
	}
	for _, r := range vh.GetRoutes() {
		m := r.GetMatch()
		switch {
		case m.GetPath() != "" && m.GetPath() != path:
			continue
		case m.GetPath() == "" && !strings.HasPrefix(path, m.GetPrefix()):
			continue
		}
		ok := true
		for _, h := range m.GetHeaders() {
			if headers[h.GetName()] != h.GetStringMatch().GetExact() {
				ok = false
			}
		}
		if !ok {
			continue
		}
		ra := r.GetRoute()
		if ra == nil {
			return nil
		}
		if c := ra.GetCluster(); c != "" {
			return []string{c}
		}
		var out []string
		for _, wc := range ra.GetWeightedClusters().GetClusters() {
			out = append(out, wc.GetName())
		}
		return out
	}
	return nil
}

// hcmv3 is the connection manager config rdsName decodes.
type hcmv3 = hcm.HttpConnectionManager
