package nginx

import (
	_ "embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed hop.conf.tmpl
var hopTemplate string

var tmpl = template.Must(template.New("hop").Parse(hopTemplate))

// Route is one HTTP server block of a hop.
type Route struct {
	Name     string // identifier, e.g. "http"
	Listen   string // host:port
	Upstream string // host:port
	H2       bool   // gRPC over h2c on both sides
}

// Hop is one nginx master and its workers.
type Hop struct {
	Dir     string // run directory for pid, logs and temp files. Required.
	Workers int    // worker_processes; 0 means 1
	Root    bool   // running as root: keep workers as root so they can use Dir
	Routes  []Route
}

// Render returns the configuration text.
func (h Hop) Render() (string, error) {
	if h.Dir == "" {
		return "", fmt.Errorf("render nginx config: Dir is required")
	}
	h.Workers = max(h.Workers, 1)
	var b strings.Builder
	if err := tmpl.Execute(&b, h); err != nil {
		return "", fmt.Errorf("render nginx config: %w", err)
	}
	return b.String(), nil
}

// Args returns nginx's command line for config file path with prefix dir.
func Args(dir, path string) []string { return []string{"-p", dir, "-c", path} }
