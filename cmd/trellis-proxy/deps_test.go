package main

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestNoGeneratedValidate keeps the generated protoc-gen-validate methods
// out of the binary: one Validate() call on an Envoy message reaches every
// nested message's through interface assertions (~2 MB of resident code,
// issue 5). The proxy's packages check what they read instead
// (internal/proxy/compile); trellisd validates what it sends.
func TestNoGeneratedValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-tags", "grpcnotrace", "-deps",
		"-f", "{{if not .Standard}}{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{end}}{{end}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		for _, name := range fields[1:] {
			src, err := os.ReadFile(filepath.Join(fields[0], name))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(src), ".Validate()") {
				t.Errorf("%s calls Validate(): the proxy must not link protoc-gen-validate's generated methods", filepath.Join(fields[0], name))
			}
		}
	}
}
