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
	if w, ok := nc.(*waitConn); ok {
		quiet, ok := w.probe()
		return ok && quiet
	}
	var raw syscall.RawConn
	if sc, ok := nc.(syscall.Conn); ok {
		var err error
		if raw, err = sc.SyscallConn(); err != nil {
			return false
		}
	} else {
		return true
	}
	alive := false
	err := raw.Read(func(fd uintptr) bool {
		alive = peekFD(fd)
		return true // never wait for readiness
	})
	return err == nil && alive
}

// probe peeks at c without blocking: quiet when the connection is open
// with nothing to read; ok is false when the probe itself failed. Its
// callback is bound once per connection: no allocation per probe.
func (c *waitConn) probe() (quiet, ok bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.peekFn == nil {
		c.peekFn = func(fd uintptr) bool {
			c.alive = peekFD(fd)
			return true
		}
	}
	c.alive = false
	err := c.raw.Read(c.peekFn)
	return c.alive, err == nil
}

// peekFD reports whether fd's connection is open and quiet.
func peekFD(fd uintptr) bool {
	var b [1]byte
	// Raw: it never blocks (see rawRead).
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}
