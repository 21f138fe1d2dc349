package xdsserver

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"slices"
	"sync"
	"weak"
)

// nameList is a sorted list of distinct resource names, immutable and
// shared by every delta stream that subscribes to exactly these names. A
// sidecar subscribes by name to the ClusterLoadAssignment of each of its
// EDS clusters and to each route table its listeners name; sidecars of one
// mesh mostly subscribe to the same names, and a list of 1000 names is
// 16 KB of string headers, so each stream keeps a pointer to a shared list
// rather than its own map (issue 5: go-control-plane's per-stream
// subscription maps were about a third of trellisd's memory per delta
// proxy).
type nameList struct {
	names []string
}

// has reports whether name is in the list. A nil list holds nothing.
func (l *nameList) has(name string) bool {
	if l == nil {
		return false
	}
	_, ok := slices.BinarySearch(l.names, name)
	return ok
}

func (l *nameList) len() int {
	if l == nil {
		return 0
	}
	return len(l.names)
}

func (l *nameList) all() []string {
	if l == nil {
		return nil
	}
	return l.names
}

// nameLists interns nameLists: equal lists are one. Entries are weak: a
// list no stream holds any more is collected, and its entry dropped by a
// cleanup. Safe for concurrent use; the zero value is ready.
type nameLists struct {
	mu    sync.Mutex
	lists map[listKey]weak.Pointer[nameList]
}

type listKey [sha256.Size]byte

// get returns the shared list of names, which must be sorted and distinct;
// the caller must not modify names afterwards. An empty list is nil.
func (ls *nameLists) get(names []string) *nameList {
	if len(names) == 0 {
		return nil
	}
	k := keyOf(names)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.lists[k].Value(); l != nil && slices.Equal(l.names, names) {
		return l
	}
	if ls.lists == nil {
		ls.lists = make(map[listKey]weak.Pointer[nameList])
	}
	l := &nameList{names: slices.Clip(names)}
	ls.lists[k] = weak.Make(l)
	runtime.AddCleanup(l, ls.forget, k)
	return l
}

// forget drops k's entry once its list is gone (and was not replaced).
func (ls *nameLists) forget(k listKey) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if wp, ok := ls.lists[k]; ok && wp.Value() == nil {
		delete(ls.lists, k)
	}
}

// len reports how many lists are interned (tests).
func (ls *nameLists) len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.lists)
}

// keyOf hashes names, each length-prefixed so that ("ab","c") and
// ("a","bc") differ.
func keyOf(names []string) listKey {
	h := sha256.New()
	var n [8]byte
	for _, name := range names {
		binary.BigEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.Write([]byte(name))
	}
	var k listKey
	h.Sum(k[:0])
	return k
}

// updated returns l with add subscribed and remove unsubscribed, interned
// in ls; l itself when nothing changes. A name in both ends unsubscribed.
// "*" is not a name (the caller handles wildcard subscriptions).
func (ls *nameLists) updated(l *nameList, add, remove []string) *nameList {
	var rm map[string]bool
	if len(remove) > 0 {
		rm = make(map[string]bool, len(remove))
		for _, name := range remove {
			rm[name] = true
		}
	}
	var fresh []string
	for _, name := range add {
		if name != wildcardName && !rm[name] && !l.has(name) {
			fresh = append(fresh, name)
		}
	}
	dropped := false
	for name := range rm {
		if l.has(name) {
			dropped = true
			break
		}
	}
	if len(fresh) == 0 && !dropped {
		return l
	}
	out := make([]string, 0, l.len()+len(fresh))
	for _, name := range l.all() {
		if !rm[name] {
			out = append(out, name)
		}
	}
	out = append(out, fresh...)
	slices.Sort(out)
	return ls.get(slices.Compact(out))
}

// same returns the interned list of names (in any order, repeats and "*"
// left out): l itself when it holds exactly those. A state-of-the-world
// request repeats its whole subscription; clients send it sorted, so an
// unchanged one costs one comparison per name.
func (ls *nameLists) same(l *nameList, names []string) *nameList {
	if slices.Equal(names, l.all()) {
		return l
	}
	sorted := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == wildcardName })
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if slices.Equal(sorted, l.all()) {
		return l
	}
	return ls.get(sorted)
}

// wildcardName subscribes to every resource of a type (xDS protocol).
const wildcardName = "*"
