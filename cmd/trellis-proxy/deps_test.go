package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryDependencies checks that, built as make build does (-tags
// grpcnotrace), the proxy links no package that defeats the linker's
// dead-method elimination or that the proxy must not carry (see the package
// doc: the binary's size is resident memory).
func TestBinaryDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-tags", "grpcnotrace", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := map[string]string{
		"text/template":              "reflective method calls keep every exported method of every type",
		"html/template":              "imports text/template",
		"golang.org/x/net/trace":     "imports html/template; build with -tags grpcnotrace",
		"google.golang.org/grpc/xds": "the proxy is not a proxyless gRPC client",
	}
	for _, pkg := range strings.Fields(string(out)) {
		if why, ok := forbidden[pkg]; ok {
			t.Errorf("trellis-proxy links %s: %s", pkg, why)
		}
	}
}
