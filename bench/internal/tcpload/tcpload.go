package tcpload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sink accepts TCP connections and discards their bytes, counting them.
// Create with Listen; it serves until Close.
type Sink struct {
	ln    net.Listener
	bytes atomic.Int64
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Listen starts a sink on addr (host:port).
func Listen(addr string) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp sink: %w", err)
	}
	s := &Sink{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Bytes is the total received so far.
func (s *Sink) Bytes() int64 { return s.bytes.Load() }

func (s *Sink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				s.bytes.Add(int64(n))
				if err != nil {
					break
				}
			}
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
	}
}

// Close stops accepting, closes open connections and waits for every
// goroutine.
func (s *Sink) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Send writes to addr over conns connections for d, in chunk-sized writes,
// and returns the bytes written. Throughput is best read from the Sink, which
// counts what actually arrived.
func Send(ctx context.Context, addr string, conns int, chunk int, d time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, max(conns, 1))
	buf := make([]byte, chunk)
	for i := range errs {
		wg.Go(func() {
			var dialer net.Dialer
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				errs[i] = fmt.Errorf("tcp send: %w", err)
				return
			}
			stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now()) })
			defer stop()
			defer c.Close()
			for ctx.Err() == nil {
				n, err := c.Write(buf)
				total.Add(int64(n))
				if err != nil {
					if ctx.Err() == nil {
						errs[i] = fmt.Errorf("tcp send: %w", err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return total.Load(), err
}
