// Package listener binds the proxy's listeners and keeps them in step with
// the current config.
//
//	Apply(cfg) ──1 build pickers (lb) and the HTTP request-path config once
//	          ──2 diff by address against the bound sockets:
//	              same address → keep the socket, swap its filter chains
//	                (one atomic store; new connections see cfg; HTTP chains
//	                that keep their name and position keep their handler, so
//	                open connections see new routes; connections accepted
//	                under a chain that is gone finish on it)
//	              gone → close the socket now, drain its in-flight requests
//	                and connections in the background for at most
//	                DrainTimeout (idle keep-alive connections close at
//	                once), then cut what is left
//	              new → bind; a bind error is reported, the rest applies
//	          ──3 publish cfg (Current) and readiness
//
// Every accepted connection goes through, on its own goroutine:
//
//	accept ──1 listener filters peek without consuming (peekedConn): the
//	          TLS inspector parses a ClientHello for SNI and ALPN
//	          (transport "tls", else "raw_buffer"), the HTTP inspector
//	          detects "http/1.1"/"h2c"; bounded by listener_filters_timeout
//	       ──2 selectChain: Envoy's filter_chain_match order (destination
//	          port, destination IP, server name, transport protocol,
//	          application protocols, source IP), most specific wins, else
//	          default_filter_chain, else close (STRICT refuses plain text so)
//	       ──3 TLS chain → tls.Server with certificates and roots resolved
//	          through runtime.Secrets at handshake time
//	       ──4 HTTP chain: the TCP connection is wrapped by
//	          http1.NewWaitConn (raw non-blocking syscalls, no sysmon
//	          wake-ups); TLS is handshaken here (ALPN decides); plain text
//	          is h2c when the HTTP inspector or the first bytes show the
//	          HTTP/2 preface. HTTP/1.x → http1.Server.ServeConn on this same
//	          goroutine (one request at a time, no goroutine per request);
//	          HTTP/2 → the socket's net/http server (fed through a queue).
//	          Either way r.TLS carries the peer certificate and the chain's
//	          httpproxy.Handler serves. TCP chain → tcpproxy (passthrough
//	          when the chain does not terminate TLS)
//
// Upstream connection pools are shared by all listeners and outlive configs.
package listener
