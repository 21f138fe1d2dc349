package xdsserver

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
)

// subSet is a resource set of the given name=version pairs, for deltaSub
// tests; resources of equal name and version are the same pointer across
// sets made by one subSets, as the interner makes them.
type subSets map[string]*resource

func (ss subSets) set(pairs ...string) *resourceSet {
	var sorted []*resource
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i] + "=" + pairs[i+1]
		r := ss[k]
		if r == nil {
			r = &resource{name: pairs[i], version: pairs[i+1]}
			ss[k] = r
		}
		sorted = append(sorted, r)
	}
	slices.SortFunc(sorted, byName)
	return newResourceSet(fmt.Sprint(pairs), sorted)
}

// step is what a delta stream would send after a request or a new set.
type step struct {
	Sent    []string // name=version
	Removed []string
	Respond bool
}

// flushSub is deltaStream.flush for one type: the response diff finds, and
// the commit that follows.
func flushSub(d *deltaSub, rs *resourceSet) step {
	if d.current(rs) {
		return step{}
	}
	out, removed := d.diff(rs)
	respond := len(out) > 0 || len(removed) > 0 || d.answer
	d.commit(rs, respond)
	var sent []string
	for _, r := range out {
		sent = append(sent, r.name+"="+r.version)
	}
	return step{Sent: sent, Removed: removed, Respond: respond}
}

func TestDeltaSub(t *testing.T) {
	ss := subSets{}
	v1 := ss.set("a", "1", "b", "1", "c", "1")
	v2 := ss.set("a", "2", "b", "1") // a changed, c removed
	type op struct {
		sub, unsub []string
		initial    map[string]string
		nonce      string
		set        *resourceSet // flush against it
		want       step
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"legacy wildcard: everything, then only changes and removals", []op{
			{set: v1, want: step{Sent: []string{"a=1", "b=1", "c=1"}, Respond: true}},
			{nonce: "1", set: v1, want: step{}},
			{nonce: "1", set: v2, want: step{Sent: []string{"a=2"}, Removed: []string{"c"}, Respond: true}},
		}},
		{"first wildcard request answered even when empty", []op{
			{sub: []string{"*"}, set: ss.set(), want: step{Respond: true}},
			{nonce: "1", set: ss.set(), want: step{}},
		}},
		{"explicit names: only those, removal of a subscribed one", []op{
			{sub: []string{"a", "c", "x"}, set: v1, want: step{Sent: []string{"a=1", "c=1"}, Respond: true}},
			{nonce: "1", set: v2, want: step{Sent: []string{"a=2"}, Removed: []string{"c"}, Respond: true}},
		}},
		{"subscribe later: sent though the stream's set had it", []op{
			{sub: []string{"a"}, set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
			{sub: []string{"b"}, nonce: "1", set: v1, want: step{Sent: []string{"b=1"}, Respond: true}},
		}},
		{"unsubscribe then subscribe again: sent again", []op{
			{sub: []string{"a", "b"}, set: v1, want: step{Sent: []string{"a=1", "b=1"}, Respond: true}},
			{unsub: []string{"b"}, nonce: "1", set: v1, want: step{}},
			{nonce: "1", set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
			{sub: []string{"b"}, nonce: "2", set: v2, want: step{Sent: []string{"b=1"}, Respond: true}},
		}},
		{"unsubscribing a name also had by wildcard resends it", []op{
			{sub: []string{"*", "a"}, set: v1, want: step{Sent: []string{"a=1", "b=1", "c=1"}, Respond: true}},
			{unsub: []string{"a"}, nonce: "1", set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
		}},
		{"unsubscribing the wildcard keeps the names", []op{
			{sub: []string{"*", "a"}, set: v1, want: step{Sent: []string{"a=1", "b=1", "c=1"}, Respond: true}},
			{unsub: []string{"*"}, nonce: "1", set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
			{nonce: "2", set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
		}},
		{"initial versions: only what differs, gone names removed", []op{
			{sub: []string{"*"}, initial: map[string]string{"a": "1", "b": "0", "gone": "1"}, set: v1,
				want: step{Sent: []string{"b=1", "c=1"}, Removed: []string{"gone"}, Respond: true}},
			{nonce: "1", set: v1, want: step{}},
		}},
		{"initial versions of unsubscribed names are ignored", []op{
			{sub: []string{"a"}, initial: map[string]string{"a": "1", "b": "0"}, set: v1, want: step{}},
			{nonce: "1", set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
		}},
		{"initial versions all current: explicit names not answered", []op{
			{sub: []string{"a", "b"}, initial: map[string]string{"a": "1", "b": "1"}, set: v1, want: step{}},
		}},
		{"a few names of a large set: held names only", []op{
			{sub: []string{"a"}, set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
			{sub: []string{"c"}, nonce: "1", set: v1, want: step{Sent: []string{"c=1"}, Respond: true}},
			{unsub: []string{"a"}, nonce: "2", set: v2, want: step{Removed: []string{"c"}, Respond: true}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ls nameLists
			var d deltaSub
			for i, o := range tc.ops {
				d.request(&ls, !d.opened, o.sub, o.unsub, o.initial, o.nonce)
				if diff := cmp.Diff(o.want, flushSub(&d, o.set)); diff != "" {
					t.Fatalf("op %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// A sidecar's explicit subscription covering its whole set is held as the
// set alone: no map.
func TestDeltaSubCompact(t *testing.T) {
	ss := subSets{}
	v1 := ss.set("a", "1", "b", "1")
	var ls nameLists
	var d deltaSub
	d.request(&ls, true, []string{"b", "a"}, nil, nil, "")
	flushSub(&d, v1)
	if d.base != v1 || d.extra != nil || d.absent != nil {
		t.Errorf("after a full response: base %p (set %p), extra %v, absent %v; want the set alone", d.base, v1, d.extra, d.absent)
	}
	var other deltaSub
	other.request(&ls, true, []string{"a", "b"}, nil, nil, "")
	if d.names != other.names {
		t.Errorf("equal subscriptions of two streams are two lists")
	}
}

// fuzzSets are the names a fuzzed client subscribes to (bit i of a byte:
// names[i]) and the sets a fuzzed node goes through.
func fuzzSets() ([]string, []*resourceSet) {
	ss := subSets{}
	return []string{"*", "a", "b", "c", "d"}, []*resourceSet{
		ss.set("a", "1", "b", "1", "c", "1"),
		ss.set("a", "2", "b", "1"),
		ss.set(),
		ss.set("b", "2", "c", "1", "d", "1"),
		ss.set("a", "1", "b", "1", "c", "1", "d", "1"),
	}
}

// refSub is go-control-plane's delta subscription with the delta response
// the sidecar cache computed before deltaSub (a version map per stream): the
// reference deltaSub must agree with.
type refSub struct {
	sub    streamv3.Subscription
	opened bool
	answer bool
}

func (r *refSub) request(sub, unsub []string, initial map[string]string, nonce string) {
	if !r.opened {
		r.sub = streamv3.NewDeltaSubscription(sub, unsub, maps.Clone(initial), true)
		r.opened = true
	} else {
		r.sub.UpdateResourceSubscriptions(sub, unsub)
	}
	r.answer = r.sub.IsWildcard() && nonce == ""
}

func (r *refSub) flush(rs *resourceSet) step {
	returned := r.sub.ReturnedResources()
	var out []*resource
	var removed []string
	if r.sub.IsWildcard() {
		for _, res := range rs.sorted {
			if v, ok := returned[res.name]; !ok || v != res.version {
				out = append(out, res)
			}
		}
		for name := range returned {
			if rs.byName[name] == nil {
				removed = append(removed, name)
			}
		}
	} else {
		for name := range r.sub.SubscribedResources() {
			v, found := returned[name]
			if res := rs.byName[name]; res != nil {
				if !found || v != res.version {
					out = append(out, res)
				}
			} else if found {
				removed = append(removed, name)
			}
		}
		slices.SortFunc(out, byName)
	}
	slices.Sort(removed)
	respond := len(out) > 0 || len(removed) > 0 || r.answer
	if !respond {
		return step{}
	}
	r.answer = false
	next := returned // updated in place, as the sidecar cache did
	if next == nil {
		next = map[string]string{}
	}
	var sent []string
	for _, res := range out {
		next[res.name] = res.version
		sent = append(sent, res.name+"="+res.version)
	}
	for _, name := range removed {
		delete(next, name)
	}
	for name := range next {
		if _, ok := r.sub.SubscribedResources()[name]; !ok && !r.sub.IsWildcard() {
			delete(next, name)
		}
	}
	r.sub.SetReturnedResources(next)
	return step{Sent: sent, Removed: removed, Respond: true}
}

// FuzzDeltaSub drives deltaSub and the reference with the same requests
// (names, "*", initial versions: what a client sends) and sets, and
// checks they send the same.
func FuzzDeltaSub(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{4, 0x11, 3, 0x22, 0x80, 5, 0x93, 2, 0x41, 7, 0x55, 1})
	f.Add([]byte{0x20, 0x31, 0x42, 0x53, 0x64, 0x75, 0x86, 0x97, 0xa8, 0xb9, 0xca, 0xdb})
	names, sets := fuzzSets()
	f.Fuzz(func(t *testing.T, ops []byte) {
		var ls nameLists
		var d deltaSub
		var ref refSub
		cur := sets[0]
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			switch op % 4 {
			case 0: // a new set
				cur = sets[int(arg)%len(sets)]
			default: // a request: subscribe and unsubscribe bits, nonce, initial versions
				var sub, unsub []string
				for j, n := range names {
					if arg&(1<<j) != 0 {
						sub = append(sub, n)
					}
				}
				if op&0x10 != 0 {
					unsub = append(unsub, names[int(op>>5)%len(names)])
				}
				nonce := ""
				if op&0x8 != 0 {
					nonce = "1"
				}
				var initial map[string]string
				if !ref.opened && arg&0x80 != 0 {
					initial = map[string]string{"a": "1", "d": "0"}
				}
				ref.request(sub, unsub, initial, nonce)
				d.request(&ls, !d.opened, sub, unsub, maps.Clone(initial), nonce)
			}
			if !ref.opened {
				continue
			}
			want, got := ref.flush(cur), flushSub(&d, cur)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("op %d (%#x %#x) against %s (-reference +deltaSub):\n%s", i/2, op, arg, cur.version, diff)
			}
		}
	})
}
