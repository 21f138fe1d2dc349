package upstream

// Connect admits one connection held for its whole life (a tcp_proxy
// connection) against max_connections, sharing the count with HTTP/1.1
// requests. It never waits and takes no request slot: ok is false on
// overflow, which the tcp_proxy answers by closing the downstream (flag
// UO). On success the caller MUST call the returned release exactly once.
func (b *Breakers) Connect() (release func(), ok bool) {
	lim := b.limits.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns >= int64(lim.MaxConnections) {
		return nil, false
	}
	b.conns++
	return b.releaseHeldConn, true
}

// releaseHeldConn frees a Connect slot, or hands it to the first HTTP/1.1
// request waiting for one.
func (b *Breakers) releaseHeldConn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 && b.conns <= int64(b.limits.Load().MaxConnections) {
		b.handOff()
		return
	}
	b.conns--
}
