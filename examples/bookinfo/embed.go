// Package bookinfo holds the mesh configuration of the Bookinfo demo, written
// in Istio's own API (networking.istio.io/v1), and embeds it so that
// `trellis demo` can write it out wherever it runs.
//
// The top-level *.yaml files are the default configuration: ServiceEntries,
// WorkloadEntries at the addresses of docs/local-mesh.md, Sidecars, subsets,
// and the ingress Gateway with its VirtualService. With no VirtualService for
// reviews, calls to it are spread round-robin across v1, v2 and v3.
// security.yaml turns on STRICT mutual TLS mesh-wide and allows exactly
// Bookinfo's call graph (AuthorizationPolicy by SPIFFE identity).
//
// The files under extras/ are not loaded by default; copying one into the
// running demo's config directory changes routing live:
//
//   - virtual-service-reviews-v3.yaml: every call to v3 (red stars)
//   - virtual-service-reviews-50-v3.yaml: v1 50%, v3 50%
//   - virtual-service-reviews-jason-v2.yaml: end-user jason to v2, others to v1
package bookinfo

import "embed"

// FS holds the configuration: the default files at its root, the optional
// ones under ExtrasDir. Read-only.
//
//go:embed *.yaml extras/*.yaml
var FS embed.FS

// ExtrasDir is the directory in FS with the configuration that is not
// loaded by default.
const ExtrasDir = "extras"
