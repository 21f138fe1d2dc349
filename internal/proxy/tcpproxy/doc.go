// Package tcpproxy is the proxy's tcp_proxy: it forwards accepted
// connections to a cluster endpoint and copies bytes both ways.
//
//	accept ──1 load state (atomic) ──2 pick weighted cluster, lb pick
//	         (none → close, flag UH) ──3 dial with connect timeout
//	         (fail → close downstream, flag UF) ──4 copy both ways; EOF on
//	         one side half-closes the other (CloseWrite) ──5 both done →
//	         close, record bytes
//
// Copies use io.Copy between *net.TCPConn, which splices in the kernel on
// Linux; byte counters are therefore added when a direction finishes.
package tcpproxy
