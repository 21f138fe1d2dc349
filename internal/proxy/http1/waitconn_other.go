//go:build !linux

package http1

import "net"

// NewWaitConn returns c: holding writes for the next read relies on
// Linux's socket calls (see waitconn.go).
func NewWaitConn(c net.Conn) net.Conn { return c }

// waitConn exists only on Linux.
type waitConn struct{}

// Hold is never called: waitConnOf finds no waitConn here.
func (*waitConn) Hold() {}

func waitConnOf(net.Conn) *waitConn { return nil }

func (*waitConn) holding() bool  { return false }
func (*waitConn) flush() error   { return nil }
func (*waitConn) readable() bool { return false }
