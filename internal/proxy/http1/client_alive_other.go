//go:build !linux

package http1

import "net"

// peekAlive cannot probe without blocking here; a connection the upstream
// closed is found by the request that fails on it (and retried when it
// may be).
func peekAlive(net.Conn) bool { return true }
