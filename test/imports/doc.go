// Package imports guards the data plane's dependency graph: trellis-proxy
// must stay a small binary that knows nothing of the control plane, of
// Kubernetes or of Istio's API, and builds only from the Envoy protos and its
// own packages under internal/proxy. The package holds only a test, which
// runs `go list -deps` on cmd/trellis-proxy.
package imports
