package xdsserver

import (
	"crypto/sha256"
	"sync"

	"google.golang.org/protobuf/proto"
)

// digest identifies a resource by its type and deterministic encoding.
type digest [sha256.Size]byte

func digestOf(typeURL string, encoded []byte) digest {
	h := sha256.New()
	h.Write([]byte(typeURL))
	h.Write([]byte{0})
	h.Write(encoded)
	var d digest
	h.Sum(d[:0])
	return d
}

// interner shares identical resources between proxies. Translation runs once
// per proxy and returns fresh messages, but most of them are the same for
// every proxy that sees a service (its clusters, endpoints and route
// tables): without sharing, a control plane with P proxies and S services
// holds P×S copies of each (issue 5: at most 0.5 MB per connected proxy).
//
// Entries are swept by generation: sweep drops what the last full push did
// not use, so the table never holds more than what some proxy was sent.
// Snapshots already handed to the cache keep their own references, so a
// swept entry is never freed from under a proxy. Safe for concurrent use.
type interner struct {
	mu    sync.Mutex
	gen   uint64
	table map[digest]*internEntry
}

type internEntry struct {
	msg proto.Message
	gen uint64
}

func newInterner() *interner { return &interner{table: make(map[digest]*internEntry)} }

// intern returns the shared message with digest d, adopting m when there is
// none. A nil interner shares nothing.
func (in *interner) intern(d digest, m proto.Message) proto.Message {
	if in == nil {
		return m
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, ok := in.table[d]; ok {
		e.gen = in.gen
		return e.msg
	}
	in.table[d] = &internEntry{msg: m, gen: in.gen}
	return m
}

// sweep forgets the entries the current generation did not use and starts
// a new generation. Call it after a push that recomputed every proxy.
func (in *interner) sweep() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for d, e := range in.table {
		if e.gen != in.gen {
			delete(in.table, d)
		}
	}
	in.gen++
}

// len reports how many resources are shared.
func (in *interner) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.table)
}
