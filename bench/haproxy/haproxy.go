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

// TLS is the trust material of one side of a TLS hop, PEM files.
type TLS struct {
	CA   string // root that verifies the peer's certificate
	Cert string // this side's certificate followed by its key (HAProxy's crt)
	// ServerName is the name the dialing side verifies in the server's
	// certificate (verifyhost); unused when serving.
	ServerName string
}

// Hop is one HAProxy process.
type Hop struct {
	// Threads sets nbthread; 0 leaves HAProxy's default (one per CPU it may
	// run on).
	Threads int
	Routes  []Route
	// Serve, when set, terminates mutual TLS on every bind: Cert is served,
	// and clients must present a certificate signed by CA. nil: plain text.
	Serve *TLS
	// Dial, when set, originates mutual TLS on every server line: the
	// upstream must present a certificate signed by CA naming ServerName, and
	// Cert is presented as the client certificate. nil: plain text.
	Dial *TLS
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
