// Package meshcfg writes the Istio YAML config directories the benchmark
// points trellisd at: the two-sidecar data-plane topology (with optional
// filler services to grow the proxy's config), and the control-plane load
// (S services of E endpoints and N proxies, with or without per-proxy Sidecar
// scoping), plus the single-file edits the control-plane scenario times.
//
// Addresses follow docs/local-mesh.md and stay in ranges no other Trellis
// test or demo uses (see Plan).
package meshcfg
