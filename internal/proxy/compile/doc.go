// Package compile turns the xDS resources trellis-proxy receives into a
// *runtime.Config. It implements exactly the Envoy subset of docs/xds.md and
// rejects, with the resource name and field path, anything outside it that
// would change behaviour, so the xDS client can NACK it and keep its last
// good config. Fields that only tune Envoy internals (stats, buffer limits,
// circuit breakers, outlier detection, idle timeouts) are ignored.
//
// Following grpc-go's xDS client, parsing (validate and convert one
// resource) is separate from building (assemble a Config from a complete
// set), and building cannot fail:
//
//	*anypb.Any ──1 Decode: unmarshal by type URL, proto Validate()──▶ proto message
//	  ──2 ParseListener / ParseRouteConfiguration / ParseCluster / ParseEndpoints:
//	       subset check, typed_config decode (http_connection_manager, tcp_proxy,
//	       router, HttpProtocolOptions), safe_regex compile──▶ *Parsed (per resource)
//	  ──3 Build: listeners sorted by name, inline route tables keyed by
//	       InlineRouteKey, EDS clusters joined with their ClusterLoadAssignment──▶ *runtime.Config
//
// Compile runs 2 and 3 over a whole Input. The xDS client runs 1 and 2 as
// each response arrives (a failure NACKs that response) and 3 when the set
// is warm.
package compile
