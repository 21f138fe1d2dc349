// Package runtime is the proxy's compiled, immutable configuration: what the
// request path reads. It is built from xDS resources by package compile and
// swapped in atomically by the listener manager; no field is ever modified
// after a Config is published, so the request path reads it without locks.
//
//	xDS resources ──1 compile (validate, NACK on error)──▶ *Config
//	  ──2 atomic swap──▶ listeners read Config on every new request/connection
//
// This package depends only on the standard library and on internal/authz
// (whose compiled RBAC policies the RBAC filters hold), so that the request
// path stays small.
package runtime
