package haproxy

import (
	_ "embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed hop.cfg.tmpl
var hopTemplate string

var tmpl = template.Must(template.New("hop").Parse(hopTemplate))

// Route is one listener of a hop.
type Route struct {
	Name     string // identifier, e.g. "http"
	Listen   string // host:port
	Upstream string // host:port
	Mode     string // "http" or "tcp"
	H2       bool   // HTTP/2 prior knowledge on both sides (gRPC)
}

// Hop is one HAProxy process.
type Hop struct {
	// Threads sets nbthread; 0 leaves HAProxy's default (one per CPU it may
	// run on).
	Threads int
	Routes  []Route
}

// Render returns the configuration text.
func (h Hop) Render() (string, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, h); err != nil {
		return "", fmt.Errorf("render haproxy config: %w", err)
	}
	return b.String(), nil
}

// Args returns HAProxy's command line to run config file path in the
// foreground.
func Args(path string) []string { return []string{"-db", "-f", path} }
