package main

import (
	"log/slog"

	"github.com/trellis-mesh/trellis/internal/meshconfig"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// loadMesh builds the mesh settings: --mesh-config (Istio's MeshConfig
// YAML) over Istio's defaults. Where the file leaves a setting at Istio's
// default, the flag decides (--proxy-http-port, --trust-domain); a trust
// domain from the file is also what the CA signs.
func loadMesh(f *flags, log *slog.Logger) (snapshot.Mesh, error) {
	mesh := snapshot.DefaultMesh()
	if f.meshConfig != "" {
		m, warns, err := meshconfig.Load(f.meshConfig)
		if err != nil {
			return mesh, err
		}
		for _, w := range warns {
			log.Warn("mesh config: setting ignored", "component", "meshconfig", "file", f.meshConfig, "detail", w)
		}
		mesh = m
		log.Info("mesh config loaded", "component", "meshconfig", "file", f.meshConfig, "trustDomain", mesh.TrustDomain,
			"rootNamespace", mesh.RootNamespace, "extensionProviders", len(mesh.ExtensionProviders))
	}
	def := snapshot.DefaultMesh()
	if mesh.ProxyHTTPPort == def.ProxyHTTPPort {
		mesh.ProxyHTTPPort = uint32(f.proxyHTTPPort)
	}
	if mesh.TrustDomain == def.TrustDomain {
		mesh.TrustDomain = f.sec.trustDomain
	} else {
		f.sec.trustDomain = mesh.TrustDomain
	}
	return mesh, nil
}
