package main

import (
	"io"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantID  string
	}{
		{"sidecar with address", []string{"--workload", "default/reviews-v1", "--address", "127.0.10.3"}, "", "sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local"},
		{"gateway learning its address", []string{"--workload", "istio-system/istio-ingressgateway", "--gateway"}, "", "router~~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"},
		{"workload required", nil, "--workload", ""},
		{"workload needs a namespace", []string{"--workload", "reviews"}, "NAMESPACE/NAME", ""},
		{"wildcard address", []string{"--workload", "a/b", "--address", "0.0.0.0"}, "wildcard", ""},
		{"bad address", []string{"--workload", "a/b", "--address", "nope"}, "--address", ""},
		{"bad port", []string{"--workload", "a/b", "--admin-port", "70000"}, "not a port", ""},
		{"stray argument", []string{"--workload", "a/b", "extra"}, "unexpected", ""},
		{"gc percent", []string{"--workload", "a/b", "--gc-percent", "100"}, "", "sidecar~~b.a~a.svc.cluster.local"},
		{"gc percent not a number", []string{"--workload", "a/b", "--gc-percent", "half"}, "gc-percent", ""},
		{"keep start-up pages", []string{"--workload", "a/b", "--release-start-pages=false"}, "", "sidecar~~b.a~a.svc.cluster.local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := nodeID(f); got != tt.wantID {
				t.Errorf("nodeID = %q, want %q", got, tt.wantID)
			}
			wantPct := defaultGCPercent
			if slices.Contains(tt.args, "--gc-percent") {
				wantPct = 100
			}
			if f.gcPercent != wantPct {
				t.Errorf("gcPercent = %d, want %d", f.gcPercent, wantPct)
			}
			if want := !slices.Contains(tt.args, "--release-start-pages=false"); f.releaseStart != want {
				t.Errorf("releaseStart = %v, want %v", f.releaseStart, want)
			}
		})
	}
}

func TestLearnAddress(t *testing.T) {
	l := func(name, addr string, dir runtime.Direction) *runtime.Listener {
		return &runtime.Listener{Name: name, Address: netip.MustParseAddrPort(addr), Direction: dir}
	}
	tests := []struct {
		name      string
		listeners []*runtime.Listener
		want      string
	}{
		{"inbound first", []*runtime.Listener{l("127.0.30.1_9080", "127.0.30.1:9080", runtime.Outbound), l("http_proxy", "127.0.10.2:15080", runtime.Outbound), l("inbound_127.0.10.3_9080", "127.0.10.3:9080", runtime.Inbound)}, "127.0.10.3"},
		{"then the http proxy listener", []*runtime.Listener{l("127.0.30.1_9080", "127.0.30.1:9080", runtime.Outbound), l("http_proxy", "127.0.10.2:15080", runtime.Outbound)}, "127.0.10.2"},
		{"then the first listener", []*runtime.Listener{l("127.0.30.1_9080", "127.0.30.1:9080", runtime.Outbound)}, "127.0.30.1"},
		{"wildcard means loopback", []*runtime.Listener{l("0.0.0.0_8080", "0.0.0.0:8080", runtime.Outbound)}, "127.0.0.1"},
		{"no listeners", nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := learnAddress(&runtime.Config{Listeners: tt.listeners})
			if diff := cmp.Diff(tt.want, a.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLeanDependencies keeps the proxy binary free of the control plane,
// Kubernetes and Istio packages.
func TestLeanDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{"k8s.io/", "istio.io/", "github.com/envoyproxy/go-control-plane/pkg/",
		"github.com/trellis-mesh/trellis/internal/config", "github.com/trellis-mesh/trellis/internal/configdir",
		"github.com/trellis-mesh/trellis/internal/registry", "github.com/trellis-mesh/trellis/internal/snapshot",
		"github.com/trellis-mesh/trellis/internal/translator", "github.com/trellis-mesh/trellis/internal/xdsserver"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == strings.TrimSuffix(f, "/") || strings.HasPrefix(pkg, f) && strings.HasSuffix(f, "/") || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("trellis-proxy depends on %s", pkg)
			}
		}
	}
}
