// Package xdsclient is trellis-proxy's ADS client. It holds one stream to the
// control plane (delta by default, state-of-the-world on request), follows
// Envoy's ordering (CDS → EDS, LDS → RDS), hands each complete resource set
// to package compile, ACKs what compiles and NACKs what does not with the
// reason, keeping the last good config. When the control plane is unreachable
// it keeps the last config and reconnects with jittered exponential backoff.
//
//	stream ──1 receive──▶ resource cache (per type) ──2 compile──▶ ok: 3 ACK, publish *runtime.Config
//	                                                             └─ error: 3 NACK with error_detail, keep last good
package xdsclient
