package tcpproxy

import (
	"errors"
	"net"
)

// serveRoute accepts from ln and hands each connection to p.Handle with r,
// as the listener manager does, until ln is closed. Handlers are p's: Close
// waits for them.
func serveRoute(p *Proxy, ln net.Listener, r *Route) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go p.Handle(c, r)
	}
}
