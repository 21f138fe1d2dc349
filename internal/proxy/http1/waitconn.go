//go:build linux

package http1

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// waitMaxHeld bounds the bytes a waitConn holds for its next read; past
// it the writes go out at once and that read is an ordinary one.
const waitMaxHeld = 32 << 10

// waitBufs are the buffers of held writes, taken by Hold and returned by
// the read that sends them, so that idle connections keep none.
var waitBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// waitConn is a TCP connection whose writes can be held for its next
// read, which then sends them and waits for the socket to be readable
// before it reads, instead of reading first.
//
// Why: Go's netpoller reads speculatively. After the proxy writes a
// request upstream, its read of the answer almost always gets EAGAIN
// first, parks on the poller, is woken and reads again: one syscall of
// every exchange is wasted (issue 5).
//
// Why the writes are held rather than only the read turned around: every
// read entry point of the runtime forgets a readiness edge that arrived
// before it (internal/poll's prepareRead) and epoll is edge-triggered, so
// waiting before reading is safe only when no byte can have arrived
// before that read began. Sending the request from inside the read (a
// syscall.RawConn.Read callback, after that point) makes it so: the
// answer is caused by the write, and its edge wakes the waiting read. A
// peer that sent something before the request (a 408, a TLS session
// ticket) does not hang the read either: the answer to the request, or
// the reset that a closed peer sends back, raises a new edge.
//
// Only the first read after Hold waits first; later reads (the rest of a
// body) read first, as net.TCPConn does. Hold is for one goroutine that
// writes and then reads; unheld, the connection is an ordinary
// *net.TCPConn (a writer and a reader may run concurrently; deadlines and
// Close from any goroutine).
type waitConn struct {
	*net.TCPConn
	raw  syscall.RawConn
	hold bool    // the owner's: set by Hold, cleared by the next Read
	held *[]byte // writes held for the next Read; nil when none

	// One read's and one write's state, here so that the callbacks, bound
	// once in readFn and writeFn, do not allocate per call; rmu and wmu
	// keep concurrent readers (writers) apart.
	rmu    sync.Mutex
	p      []byte
	sent   int
	n      int
	errno  error
	failed bool // sending the held bytes failed (errno), or stopped at EAGAIN
	wrote  bool // the held bytes (if any) were handed to the socket
	readFn func(fd uintptr) bool
	peekFn func(fd uintptr) bool // probe's (client_alive_linux.go)
	alive  bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werrno  error
	writeFn func(fd uintptr) bool
}

// NewWaitConn returns c ready for held writes when it is a *net.TCPConn,
// else c itself. Wrap the TCP connection before layering TLS on it
// (tls.Client(NewWaitConn(raw), cfg)): the Client finds it under a
// *tls.Conn and holds the encrypted records of each request for the read
// of its response. Unheld, it behaves as the *net.TCPConn.
func NewWaitConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &waitConn{TCPConn: tc, raw: raw}
	w.readFn = w.waitRead
	w.writeFn = w.rawWrite
	return w
}

// waitConnOf returns the waitConn under nc: itself, or under layers that
// expose what they wrap with NetConn (TLS, the listener's replay of
// peeked bytes, which exposes it once they are read).
func waitConnOf(nc net.Conn) *waitConn {
	for range 4 {
		switch c := nc.(type) {
		case *waitConn:
			return c
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Hold keeps the writes from now on until the next Read, which sends
// them and then waits for an answer before reading. Call it only when
// the next Read follows the writes on the same goroutine and the socket
// has nothing unread (the peer speaks only when spoken to).
func (c *waitConn) Hold() {
	c.hold = true
	if c.held == nil {
		c.held = waitBufs.Get().(*[]byte)
	}
}

// holding reports whether writes wait for the next Read.
func (c *waitConn) holding() bool { return c.hold && c.held != nil && len(*c.held) > 0 }

// flush sends held writes now: before a Close, which would drop them.
func (c *waitConn) flush() error {
	if !c.hold {
		return nil
	}
	return c.sendHeld()
}

// readable reports, without blocking, whether bytes (or an EOF, which a
// read reports) wait to be read.
func (c *waitConn) readable() bool {
	quiet, ok := c.probe()
	return ok && !quiet
}

func (c *waitConn) Write(p []byte) (int, error) {
	if !c.hold {
		return c.write(p)
	}
	if len(*c.held)+len(p) <= waitMaxHeld {
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	// Too much to hold: send it all now; the read will be an ordinary one.
	if err := c.sendHeld(); err != nil {
		return 0, err
	}
	return c.write(p)
}

// write sends p as net.TCPConn.Write does (waiting for the socket when it
// is full, honouring the write deadline), with raw syscalls.
func (c *waitConn) write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werrno = p, 0, nil
	err := c.raw.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wp = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != nil:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// rawWrite is the RawConn.Write callback of write.
func (c *waitConn) rawWrite(fd uintptr) bool {
	for c.wn < len(c.wp) {
		m, errno := rawSend(fd, c.wp[c.wn:])
		switch errno {
		case 0:
			c.wn += m
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // full: wait for room
		}
		c.werrno = errno
		return true
	}
	return true
}

// sendHeld writes the held bytes now and stops holding.
func (c *waitConn) sendHeld() error {
	c.hold = false
	if c.held == nil {
		return nil
	}
	var err error
	if b := *c.held; len(b) > 0 {
		_, err = c.write(b)
	}
	c.release()
	return err
}

// release gives the held buffer back to the pool.
func (c *waitConn) release() {
	if c.held == nil {
		return
	}
	*c.held = (*c.held)[:0]
	if cap(*c.held) <= 2*waitMaxHeld {
		waitBufs.Put(c.held)
	}
	c.held = nil
}

// ReadFrom and WriteTo keep the order of held bytes when io.Copy takes
// the splice and sendfile paths of *net.TCPConn.
func (c *waitConn) ReadFrom(r io.Reader) (int64, error) {
	if c.hold {
		if err := c.sendHeld(); err != nil {
			return 0, err
		}
	}
	return c.TCPConn.ReadFrom(r)
}

func (c *waitConn) WriteTo(w io.Writer) (int64, error) {
	if c.hold {
		if err := c.sendHeld(); err != nil {
			return 0, err
		}
	}
	return c.TCPConn.WriteTo(w)
}

func (c *waitConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	held := false
	if c.hold { // only the owner sets hold; a concurrent writer only reads it
		c.hold = false
		if held = c.held != nil && len(*c.held) > 0; !held {
			c.release()
		}
	}
	// Unheld: read first (wrote is already true), as net.TCPConn does.
	c.p, c.sent, c.n, c.errno, c.failed, c.wrote = p, 0, 0, nil, false, !held
	err := c.raw.Read(c.readFn)
	c.p = nil
	if held {
		b := *c.held
		switch {
		case err != nil && !c.wrote:
			// The deadline passed or the connection closed before anything
			// was sent: the exchange fails as a write would have.
			c.release()
			return 0, c.opError("write", err)
		case c.failed && c.errno == syscall.EAGAIN:
			// The socket buffer is full: send the rest with the poller's
			// help, then read as usual.
			_, werr := c.write(b[c.sent:])
			c.release()
			if werr != nil {
				return 0, werr
			}
			c.p, c.n, c.errno = p, 0, nil
			err = c.raw.Read(c.readFn)
			c.p = nil
		case c.failed:
			c.release()
			return 0, c.opError("write", os.NewSyscallError("write", c.errno))
		default:
			c.release()
		}
	}
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.errno != nil:
		return 0, c.opError("read", os.NewSyscallError("read", c.errno))
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// waitRead is the RawConn.Read callback: with held bytes its first call
// sends them and declines, so that the runtime parks on the poller; the
// other calls read, declining on EAGAIN.
func (c *waitConn) waitRead(fd uintptr) bool {
	if !c.wrote {
		c.wrote = true
		b := *c.held
		for c.sent < len(b) {
			m, errno := rawSend(fd, b[c.sent:])
			switch errno {
			case 0:
				c.sent += m
				continue
			case syscall.EINTR:
				continue
			}
			c.failed, c.errno = true, errno
			return true
		}
		return false
	}
	for {
		n, errno := rawRead(fd, c.p)
		switch errno {
		case 0:
			c.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // nothing yet: wait for readability
		}
		c.errno = errno
		return true
	}
}

// rawRead and rawSend are read(2) and send(2) on a non-blocking socket.
// They never block, so they skip the runtime's syscall bookkeeping
// (entersyscall/exitsyscall): that bookkeeping wakes a sleeping sysmon,
// which then polls every 20 µs for a millisecond: a thread wake-up and
// dozens of context switches per request at 1000 rps (issue 5). A send
// on loopback runs the peer's TCP receive path and takes some
// microseconds; holding the P that long is what any computation does.
// MSG_NOSIGNAL: a broken connection answers EPIPE without a signal.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), errno
}

func rawSend(fd uintptr, p []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_NOSIGNAL, 0, 0)
	return int(r), errno
}

// opError dresses an error as net.TCPConn's Read and Write do.
func (c *waitConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
