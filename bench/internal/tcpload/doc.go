// Package tcpload measures TCP throughput: a Sink accepts connections and
// discards what it reads, and Send writes fixed-size chunks over a few
// connections for a bounded time, through whatever proxy sits between them.
package tcpload
