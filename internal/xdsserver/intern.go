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

// interner shares identical resources between proxies; only valid
// resources enter it. Translation runs once
// per proxy and returns fresh messages, but most of them are the same for
// every proxy that sees a service (its clusters, endpoints and route
// tables): without sharing, a control plane with P proxies and S services
// holds P×S copies of each (issue 5: at most 0.5 MB per connected proxy).
//
// Entries are swept by generation: sweep drops what the last full push did
// not use, so the table never holds more than what some proxy was sent.
// Snapshots already handed to the cache keep their own references, so a
// swept entry is never freed from under a proxy. Safe for concurrent use.
//
// It also remembers, by identity, the digest of the messages the translator
// shares between proxies (translator.TranslateCached): a cluster that 1000
// proxies receive as the same pointer is validated, marshalled and hashed
// once per push, not 1000 times. Remembered messages must never be
// modified; the translator's shared ones are not, and build modifies
// nothing.
type interner struct {
	mu    sync.Mutex
	gen   uint64
	table map[digest]*internEntry
	known map[proto.Message]*knownEntry // by identity; see remember
}

type knownEntry struct {
	d   digest
	gen uint64
}

type internEntry struct {
	msg proto.Message
	gen uint64
}

func newInterner() *interner {
	return &interner{table: make(map[digest]*internEntry), known: make(map[proto.Message]*knownEntry)}
}

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

// get returns the shared message with digest d, marking it used; false
// when there is none or the interner is nil.
func (in *interner) get(d digest) (proto.Message, bool) {
	if in == nil {
		return nil, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	e, ok := in.table[d]
	if !ok {
		return nil, false
	}
	e.gen = in.gen
	return e.msg, true
}

// remember records that m, already validated, has digest d. A nil
// interner remembers nothing.
func (in *interner) remember(m proto.Message, d digest) {
	if in == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.known[m] = &knownEntry{d: d, gen: in.gen}
}

// lookup returns the shared message and digest for a message remembered
// earlier; false when m is not known.
func (in *interner) lookup(m proto.Message) (proto.Message, digest, bool) {
	if in == nil {
		return nil, digest{}, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	k, ok := in.known[m]
	if !ok {
		return nil, digest{}, false
	}
	k.gen = in.gen
	e, ok := in.table[k.d]
	if !ok { // swept while m was not in use: m is the shared one again
		e = &internEntry{msg: m}
		in.table[k.d] = e
	}
	e.gen = in.gen
	return e.msg, k.d, true
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
	for m, k := range in.known {
		if k.gen != in.gen {
			delete(in.known, m)
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
