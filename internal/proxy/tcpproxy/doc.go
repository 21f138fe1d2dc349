// Package tcpproxy is the proxy's tcp_proxy: it forwards accepted
// connections to a cluster endpoint and copies bytes both ways.
//
//	accept ──1 load state (atomic); Admit hook (network rbac filters, in
//	         chain order, each must allow) ──2 pick weighted cluster, lb
//	         pick (none → close, flag UH) ──3 circuit breaker
//	         max_connections, shared with HTTP through upstream.Cluster
//	         (overflow → close, flag UO) ──4 dial within connect_timeout,
//	         then the endpoint's transport socket (transport_socket_matches:
//	         auto mTLS, SANs checked) within the same deadline (fail →
//	         close downstream, flag UF); the outcome feeds outlier detection
//	         as a local-origin event ──5 copy both ways; EOF on one side
//	         half-closes the other (CloseWrite) ──6 both done → close,
//	         record bytes
//
// Copies use io.Copy between *net.TCPConn, which splices in the kernel on
// Linux; byte counters are therefore added when a direction finishes.
package tcpproxy
