// Package runtime is the proxy's compiled, immutable configuration: what the
// request path reads. It is built from xDS resources by package compile and
// swapped in atomically by the listener manager; no field is ever modified
// after a Config is published, so the request path reads it without locks.
//
//	xDS resources ──1 compile (validate, NACK on error)──▶ *Config
//	  ──2 atomic swap──▶ listeners read Config on every new request/connection
//
// This package has no dependencies beyond the standard library so that the
// request path stays small.
package runtime
