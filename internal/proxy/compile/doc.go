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
//	*anypb.Any ──1 Decode: unmarshal by type URL, name present──▶ proto message
//	  ──2 ParseListener / ParseRouteConfiguration / ParseCluster / ParseEndpoints:
//	       subset check, field checks (check.go), typed_config decode
//	       (http_connection_manager, tcp_proxy, router, HttpProtocolOptions,
//	       filters), safe_regex compile──▶ *Parsed (per resource)
//	  ──3 Build: listeners sorted by name, inline route tables keyed by
//	       InlineRouteKey, EDS clusters joined with their ClusterLoadAssignment──▶ *runtime.Config
//
// The proxy checks what it reads and nothing else: it does not link the
// generated protoc-gen-validate Validate methods (about 2 MB of resident
// code, issue 5). Every field a parse function uses is checked there, with
// the rule Envoy's PGV annotation states (required names, positive
// durations and weights, status and percentage ranges, header-safe strings,
// list bounds), so a malformed resource is still NACKed; trellisd validates
// every resource it sends. TestParseRejectsWhatValidateRejects pins this.
//
// Parsed values that repeat across a sidecar's config are shared rather
// than copied (issue 5: KB per cluster and per endpoint): transport socket
// match maps (every mesh endpoint and cluster carries Istio's tlsMode ones)
// and a route table's equal retry policies. Shared values MUST NOT be
// modified; nothing downstream of Build does.
//
// Compile runs 2 and 3 over a whole Input. The xDS client runs 1 and 2 as
// each response arrives (a failure NACKs that response) and 3 when the set
// is warm.
package compile
