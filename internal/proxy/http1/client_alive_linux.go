package http1

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
)

// peekAlive probes an idle connection without blocking: a non-blocking
// MSG_PEEK recv answers EAGAIN while the connection is open and quiet,
// 0 once the upstream closed it, and data when it sent something unasked.
// It is one syscall and no goroutine (net/http keeps a reader goroutine
// per connection to learn the same).
func peekAlive(nc net.Conn) bool {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	var raw syscall.RawConn
	if w, ok := nc.(*waitConn); ok {
		raw = w.raw // no SyscallConn allocation per probe
	} else if sc, ok := nc.(syscall.Conn); ok {
		var err error
		if raw, err = sc.SyscallConn(); err != nil {
			return false
		}
	} else {
		return true
	}
	alive := false
	err := raw.Read(func(fd uintptr) bool {
		var b [1]byte
		// Raw: it never blocks (see rawRead).
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		alive = errno == syscall.EAGAIN
		return true // never wait for readiness
	})
	return err == nil && alive
}
