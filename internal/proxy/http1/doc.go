// Package http1 speaks HTTP/1.1 for the proxy without net/http's
// per-connection goroutines: a server connection loop that serves
// HTTP/1.1 to an http.Handler (server*.go), and a client with a pool of
// upstream connections per address (client*.go) that implements
// http.RoundTripper, so that the proxy's retries, circuit breakers and
// outlier reporting sit on top of it unchanged.
//
// Server: ServeConn(ctx, conn, h) runs on the connection's goroutine.
//
//	ServeConn ──▶ 1 wait for a request (IdleTimeout); read its head
//	              (ReadHeaderTimeout; over 60 KiB → 431) from a pooled
//	              bufio.Reader: a common head already buffered is parsed
//	              in place (request.go: the connection's Request, URL and
//	              header map reused, one string per head, none while a
//	              client repeats its head); anything else with
//	              http.ReadRequest
//	              2 run h with a ResponseWriter over a pooled bufio.Writer
//	                and a request context of its own (request_context.go:
//	                no WithCancel, children map or Done channel unless
//	                asked; AfterFunc registers in place):
//	                a body up to 4 KiB is held until the handler ends or
//	                flushes, so a small response is one write with a
//	                Content-Length; else chunked (trailers,
//	                http.TrailerPrefix)
//	              3 finish: discard up to 256 KiB of unread body, or close;
//	                a kept connection holds the response for step 1
//
// No goroutine per request: one timer per connection; a request still
// running after 10 ms reads the connection once its body is done, so a
// client that leaves cancels the context (response flag DC). Hijack serves
// upgrades; Shutdown closes idle connections and waits for active ones.
//
// Client: one exchange runs on the calling goroutine.
//
//	RoundTrip(req) ──▶ 1 hostPool(req.URL.Host): idle list, most recent last
//	                   2 get: pop an idle conn; past the idle timeout → close;
//	                     idle ≥ 250 ms or request not retryable → MSG_PEEK
//	                     probe (EOF or unasked bytes → close); none → Dial
//	                   3 AfterFunc(ctx, set past deadline) (the context's own
//	                     when it has one, AfterFuncer): a cancel or
//	                     per-try/route timeout interrupts any read or write
//	                   4 head (+ body ≤ 64 KiB, Content-Length) in one buffered
//	                     write, held (waitConn) for step 5; larger or chunked
//	                     bodies: one goroutine writes while 5 runs, so an
//	                     early answer cannot deadlock
//	                   5 read the response head on the conn's bufio.Reader;
//	                     its first read sends the held request, then waits
//	                     for readability before reading; a common head
//	                     (Content-Length, no Transfer-Encoding) is parsed in
//	                     place (response.go), others by http.ReadResponse;
//	                     1xx → httptrace Got1xxResponse, then the next head
//	                   6 failure on a reused conn before any response byte,
//	                     request replayable → once more on a fresh conn
//	resp.Body.Read ──▶ 7 EOF, keep-alive, body fully sent → back to the pool
//	                     (idle timer armed); Close before EOF → conn closed
//
// Sockets (waitconn.go): NewWaitConn wraps a *net.TCPConn, under TLS or
// not (the listener wraps downstream HTTP connections, the proxy's
// dialer upstream TLS ones, the Client plain upstream ones). Its reads and
// writes are raw non-blocking syscalls in syscall.RawConn callbacks: they
// skip entersyscall, which wakes a sleeping sysmon that then polls every
// 20 µs for a millisecond (at 1000 rps that was ~2 nanosleeps and half a
// futex wake per request). Held writes go out from the next read, which
// waits for the answer before reading: the speculative read that answers
// EAGAIN is gone from every upstream exchange. Waiting first is safe only
// because the answer is caused by a write made after the read began (the
// runtime forgets earlier readiness, and epoll is edge-triggered). The
// server loop does the same with a response that keeps the connection:
// the read of the next request sends it and waits. A pipelining client
// may have sent that request before the response left, so the wait is
// bounded (100 ms), after which the loop reads, and a connection seen
// pipelining stops holding.
//
// Upgrades (WebSocket) and HTTP/2 are not handled here; the proxy keeps
// net/http for them. A connection is used by one request at a time; the
// pool bounds only idle connections (circuit breakers bound the rest).
package http1
