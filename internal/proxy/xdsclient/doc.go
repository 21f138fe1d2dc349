// Package xdsclient is trellis-proxy's ADS client. It holds one stream to the
// control plane (delta by default, state-of-the-world on request), follows
// Envoy's ordering (CDS → EDS, LDS → RDS), hands each response to package
// compile, ACKs what compiles and NACKs what does not with the reason,
// keeping the last good config. When the control plane is unreachable it
// keeps the last config and reconnects with jittered exponential backoff.
//
//	Run ──1 dial, open stream, subscribe: CDS "*", LDS "*" (+ EDS/RDS names held)
//	     │   delta: initial_resource_versions; SotW: last accepted version_info
//	     ▼
//	receive goroutine ──2 response──▶ session loop (owns all state)
//	                                   3 Decode + Parse every resource (compile)
//	                                   ├─ error: 4 NACK (error_detail, previous version), store nothing
//	                                   └─ ok:    4 store (SotW LDS/CDS: complete set, removal by omission;
//	                                             RDS/EDS and delta: named upserts and removals), ACK,
//	                                             5 listeners/clusters changed → (un)subscribe RDS/EDS names
//	                                   6 warm? every referenced route table and ClusterLoadAssignment
//	                                     arrived once (or WarmingTimeout passed) → compile.Build → OnConfig
//	stream breaks ──7 keep state and last config, back off (jittered, ≤ MaxBackoff), go to 1
//
// State (the parsed resources with a digest of each one's bytes, delta
// resource versions, SotW accepted versions, RDS/EDS subscriptions) lives for
// the whole of Run, so a reconnect resumes rather than starts over. Decoded
// protos are dropped once parsed: only the parsed form feeds Build, and
// keeping both doubled the memory per cluster and endpoint (issue 5). A
// state-of-the-world server answers a NACK by resending the same resources;
// repeated identical NACKs are therefore sent with a growing delay.
//
// The stream has a codec and buffer pool of its own (codec.go): gRPC's
// defaults would park about twice the largest response in a process-wide
// pool that an idle proxy never drains.
package xdsclient
