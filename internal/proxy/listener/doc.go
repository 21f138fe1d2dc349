// Package listener binds the proxy's listeners and keeps them in step with
// the current config.
//
//	Apply(cfg) ──1 build pickers (lb) and the HTTP request-path config once
//	          ──2 diff by address against the bound listeners:
//	              same address and kind → keep the socket, swap the
//	                handler's state (one atomic store; new requests see cfg,
//	                in-flight ones finish on the old)
//	              gone, or kind changed → close the socket now, drain its
//	                in-flight requests/connections in the background for at
//	                most DrainTimeout, then cut what is left
//	              new → bind; a bind error is reported, the rest applies
//	          ──3 publish cfg (Current) and readiness
//
// HTTP listeners run an http.Server (HTTP/1.1 and h2c) over an
// httpproxy.Handler; TCP listeners run a tcpproxy.Proxy. Upstream
// connection pools are shared by all listeners and outlive configs.
package listener
