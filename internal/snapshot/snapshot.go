package snapshot

import (
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Snapshot is one coherent, immutable view of config and registry.
type Snapshot struct {
	Version  uint64 // increases with every published snapshot
	Config   *config.Set
	Registry *registry.Registry
	Mesh     Mesh
}

// Mesh holds mesh-wide settings, Istio's MeshConfig subset Trellis uses.
type Mesh struct {
	TrustDomain   string // "cluster.local" by default
	RootNamespace string // "istio-system" by default
	DomainSuffix  string // "cluster.local"
	// ProxyHTTPPort is the port of each sidecar's HTTP-proxy listener (Istio's
	// meshConfig.proxyHttpPort), bound on the workload's address; 0 disables it.
	ProxyHTTPPort uint32
}

// DefaultMesh returns Istio's defaults.
func DefaultMesh() Mesh {
	return Mesh{TrustDomain: "cluster.local", RootNamespace: "istio-system", DomainSuffix: "cluster.local", ProxyHTTPPort: 15080}
}
