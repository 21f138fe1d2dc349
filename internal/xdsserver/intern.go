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
	sets  map[setKey]*setEntry          // equal sets of different nodes
}

type knownEntry struct {
	d   digest
	gen uint64
}

type internEntry struct {
	res *resource
	gen uint64
}

// setKey identifies a resourceSet: its type (servedTypes index) and version,
// a hash of every name and digest in it.
type setKey struct {
	typ     int
	version string
}

type setEntry struct {
	set *resourceSet
	gen uint64
}

func newInterner() *interner {
	return &interner{table: make(map[digest]*internEntry), known: make(map[proto.Message]*knownEntry),
		sets: make(map[setKey]*setEntry)}
}

// intern returns the shared resource with digest d, adopting r when there is
// none. A nil interner shares nothing.
func (in *interner) intern(d digest, r *resource) *resource {
	if in == nil {
		return r
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, ok := in.table[d]; ok {
		e.gen = in.gen
		return e.res
	}
	in.table[d] = &internEntry{res: r, gen: in.gen}
	return r
}

// get returns the shared resource with digest d, marking it used; false
// when there is none or the interner is nil.
func (in *interner) get(d digest) (*resource, bool) {
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
	return e.res, true
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

// lookup returns the shared resource and digest for a message remembered
// earlier; false when m is not known, or its resource was swept (the caller
// encodes it again).
func (in *interner) lookup(m proto.Message) (*resource, digest, bool) {
	if in == nil {
		return nil, digest{}, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	k, ok := in.known[m]
	if !ok {
		return nil, digest{}, false
	}
	e, ok := in.table[k.d]
	if !ok {
		return nil, digest{}, false
	}
	k.gen, e.gen = in.gen, in.gen
	return e.res, k.d, true
}

// set returns the shared set of type typ with version and, when there is
// none, one made of sorted (which the caller must not modify afterwards).
func (in *interner) set(typ int, version string, sorted []*resource) *resourceSet {
	if in == nil {
		return newResourceSet(version, sorted)
	}
	k := setKey{typ, version}
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, ok := in.sets[k]; ok {
		e.gen = in.gen
		return e.set
	}
	rs := newResourceSet(version, sorted)
	in.sets[k] = &setEntry{set: rs, gen: in.gen}
	return rs
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
	for k, e := range in.sets {
		if e.gen != in.gen {
			delete(in.sets, k)
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
