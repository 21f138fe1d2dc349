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

// TLS is the trust material of one side of a TLS hop, PEM files.
type TLS struct {
	CA   string // root that verifies the peer's certificate
	Cert string // this side's certificate
	Key  string // its private key
	// ServerName is the name the dialing side verifies in the server's
	// certificate (proxy_ssl_name); unused when serving.
	ServerName string
}

// Hop is one nginx master and its workers.
type Hop struct {
	Dir     string // run directory for pid, logs and temp files. Required.
	Workers int    // worker_processes; 0 means 1
	Root    bool   // running as root: keep workers as root so they can use Dir
	Routes  []Route
	// Serve, when set, terminates mutual TLS on every listen: Cert is
	// served and clients must present a certificate signed by CA. nil: plain
	// text.
	Serve *TLS
	// Dial, when set, sends to upstreams over mutual TLS (https:// and
	// grpcs://), verifying ServerName against CA and presenting Cert. nil:
	// plain text.
	Dial *TLS
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
