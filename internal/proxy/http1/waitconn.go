package http1

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
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
	hold bool
	held *[]byte // writes held for the next Read; nil when none

	// One waiting read's state, here so that the callback, bound once in
	// readFn, does not allocate per read.
	p      []byte
	sent   int
	n      int
	errno  error
	failed bool // sending the held bytes failed (errno), or stopped at EAGAIN
	wrote  bool // the held bytes were handed to the socket
	readFn func(fd uintptr) bool
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
	return w
}

// waitConnOf returns the waitConn under nc (itself, or under TLS).
func waitConnOf(nc net.Conn) *waitConn {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn()
	}
	w, _ := nc.(*waitConn)
	return w
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

func (c *waitConn) Write(p []byte) (int, error) {
	if !c.hold {
		return c.TCPConn.Write(p)
	}
	if len(*c.held)+len(p) <= waitMaxHeld {
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	// Too much to hold: send it all now; the read will be an ordinary one.
	if err := c.sendHeld(); err != nil {
		return 0, err
	}
	return c.TCPConn.Write(p)
}

// sendHeld writes the held bytes now and stops holding.
func (c *waitConn) sendHeld() error {
	c.hold = false
	if c.held == nil {
		return nil
	}
	b := *c.held
	c.release()
	if len(b) == 0 {
		return nil
	}
	_, err := c.TCPConn.Write(b)
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
	if !c.hold || len(p) == 0 {
		return c.TCPConn.Read(p)
	}
	c.hold = false
	if c.held == nil || len(*c.held) == 0 {
		c.release()
		return c.TCPConn.Read(p)
	}
	c.p, c.sent, c.n, c.errno, c.failed, c.wrote = p, 0, 0, nil, false, false
	err := c.raw.Read(c.readFn)
	c.p = nil
	b := *c.held
	switch {
	case err != nil && !c.wrote:
		// The deadline passed or the connection closed before anything was
		// sent: the exchange fails as a write would have.
		c.release()
		return 0, c.opError("write", err)
	case err != nil:
		c.release()
		return 0, c.opError("read", err)
	case c.failed && c.errno == syscall.EAGAIN:
		// The socket buffer is full: send the rest with the poller's help,
		// then read as usual.
		_, werr := c.TCPConn.Write(b[c.sent:])
		c.release()
		if werr != nil {
			return 0, werr
		}
		return c.TCPConn.Read(p)
	case c.failed:
		c.release()
		return 0, c.opError("write", os.NewSyscallError("write", c.errno))
	}
	c.release()
	switch {
	case c.errno != nil:
		return 0, c.opError("read", os.NewSyscallError("read", c.errno))
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// waitRead is the RawConn.Read callback: its first call sends the held
// bytes and declines, so that the runtime parks on the poller; later calls
// read.
func (c *waitConn) waitRead(fd uintptr) bool {
	if !c.wrote {
		c.wrote = true
		b := *c.held
		for c.sent < len(b) {
			m, err := syscall.Write(int(fd), b[c.sent:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				c.failed, c.errno = true, err
				return true
			}
			c.sent += m
		}
		return false
	}
	for {
		n, err := syscall.Read(int(fd), c.p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // woken early: wait again
		}
		c.n, c.errno = max(n, 0), err
		return true
	}
}

// opError dresses an error as net.TCPConn's Read and Write do.
func (c *waitConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
