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
//	bytes ──1 split documents (yaml.v3)──▶ yaml nodes
//	      ──2 header: apiVersion, kind, metadata (namespace defaults to "default")
//	      ──3 schema walk of spec against the proto descriptor: unknown fields,
//	          wrong types, enums, oneofs, durations; records path → line
//	      ──4 JSON ──▶ protojson into the istio.io/api type
//	      ──5 semantic checks (validate*.go), placed via the path → line index
//	      ──▶ *File{Resources, Failed, Errors}
//	[]*File ──6 Merge: duplicates (first in file order wins)──▶ *Set (immutable)
//
// Entry points: ParseFile / Parse for one file's bytes, ReadDir + Merge or
// LoadDir for a directory. The directory source (internal/configdir) builds
// its last-good view from ParseFile results and Merge.
package config
