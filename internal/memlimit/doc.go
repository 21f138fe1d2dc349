// Package memlimit sets the Go runtime's GC policy of a Trellis command
// from its flags: the soft memory limit (--memory-limit, in GOMEMLIMIT's
// syntax) and the GC percentage. The environment wins, as the runtime and
// Istio's deployments expect: istiod and the sidecar agent get GOMEMLIMIT
// from their container's memory limit, and GOGC, when set, is the
// operator's choice.
//
// It is a leaf: the standard library only, so that trellis-proxy may link
// it (test/imports).
package memlimit
