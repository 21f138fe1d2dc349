// Package upstream holds the state a proxy keeps about its upstream
// clusters across configs, and the client side of upstream TLS:
//
//	config ──1 Set.Update(runtime.Cluster)──▶ *Cluster (same object for the
//	          same cluster name: counters and outlier state survive config
//	          changes; endpoints no longer present are forgotten)
//	request ──2 Cluster.Picker (rebuilt when an ejection starts or ends,
//	          checked lazily against the clock: no timer goroutines)
//	        ──3 Cluster.Breakers: max_requests, max_connections +
//	          max_pending_requests (HTTP/1.1 waits in a bounded queue),
//	          max_retries; overflow is response flag UO
//	        ──4 Cluster.Report(addr, Outcome) after each attempt: outlier
//	          detection counts consecutive 5xx / gateway / local-origin
//	          failures and ejects for base_ejection_time × ejections
//	dial    ──5 SocketFor picks the transport socket per endpoint
//	          (transport_socket_matches on envoy.transport_socket_match
//	          metadata: Istio's auto mTLS); ClientTLS resolves SDS secrets
//	          at handshake time and checks the chain and SANs
//
// All methods are safe for concurrent use. Time comes from an injectable
// Clock so that tests run without sleeping.
package upstream
