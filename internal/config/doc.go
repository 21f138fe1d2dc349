// Package config decodes and validates Istio configuration written as YAML.
//
// Users write Istio's own API (networking.istio.io/v1, v1beta1 and v1alpha3:
// ServiceEntry, WorkloadEntry, WorkloadGroup, VirtualService, DestinationRule,
// Gateway, Sidecar). Each document is decoded into the official protobuf types
// of istio.io/api, never look-alike structs, and validated once, here, at
// ingest. Everything downstream builds only from a validated [Set], where
// building cannot fail.
//
// Errors carry the file, the line where it can be known, the resource and the
// field path (spec.http[0].route[1].weight) so that a user can fix the input
// without reading code. Nothing in this package panics on any input; the
// loader has a fuzz target.
//
//	bytes ──1 split documents──▶ yaml nodes ──2 schema walk (unknown field,
//	wrong type, with line numbers)──▶ protojson decode ──3 semantic checks──▶
//	*Resource ──4 NewSet (duplicates)──▶ *Set (immutable)
package config
