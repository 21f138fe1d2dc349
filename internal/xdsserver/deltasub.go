package xdsserver

import (
	"slices"
	"strings"
)

// deltaSub is one xDS type of one delta stream: what the client subscribes
// to and what it holds. It is go-control-plane's stream.Subscription
// (subscribed names and returned versions) in compact form, with the same
// rules (pkg/server/stream/v3, v0.14.0):
//
//   - a first request naming nothing is a legacy wildcard subscription,
//     which stays wildcard until a request names something; "*" subscribes
//     and unsubscribes the wildcard explicitly;
//   - unsubscribing a name the stream also gets by wildcard makes the next
//     response say whether it still exists (sent again, or removed);
//   - initial_resource_versions are what the client holds after a
//     reconnect: only what differs from them is sent.
//
// What the client holds is base, the shared set last sent (immutable, see
// resourceSet), minus absent plus extra. After a response to a wildcard
// subscription, or to names covering the whole set (a sidecar subscribes to
// every ClusterLoadAssignment and route table it is sent), that is one
// pointer: a stream costs no map per type, where go-control-plane kept a
// name→version map and a name set of about 1000 entries each (issue 5:
// ~210 KB per stream, the floor of trellisd's memory per delta proxy).
// Subscribed names are a shared interned list (names.go).
//
// Owned by the stream's goroutine; not safe for concurrent use.
type deltaSub struct {
	opened   bool // a request of the type arrived
	wildcard bool
	legacy   bool      // wildcard by legacy rule until a request names something
	names    *nameList // explicitly subscribed, sorted
	answer   bool      // a response is owed even if empty (see request)
	dirty    bool      // subscription or holdings changed since last diff
	// unanswered: a response was sent and no request of the type came
	// since. go-control-plane answers each request (ACK, NACK or
	// subscription change) at most once, so a client has at most one
	// response per type it has not answered; the stream keeps that.
	unanswered bool

	base   *resourceSet
	absent map[string]struct{} // names in base the client does not hold
	extra  map[string]string   // name → version held, overriding base
}

// request applies a request's subscription changes. first: the stream's
// first request of the type, whose initial versions say what the client
// holds (the map is the deltaSub's from then on). nonce is the
// request's response_nonce.
func (d *deltaSub) request(ls *nameLists, first bool, sub, unsub []string, initial map[string]string, nonce string) {
	if first {
		d.opened, d.legacy, d.wildcard = true, true, len(sub) == 0
		if len(initial) > 0 {
			d.extra = initial // replaced, not modified, by the first commit
		}
	}
	d.unanswered = false
	if first || len(sub) > 0 || len(unsub) > 0 {
		d.dirty = true // an ACK or NACK changes nothing held
	}
	// A stream's first wildcard request is always answered, even with
	// nothing, or Envoy never finishes initialising; so is any request
	// without a nonce on a wildcard stream, as the cache answered it.
	defer func() { d.answer = d.wildcard && nonce == "" }()
	if d.legacy {
		if len(sub) == 0 {
			return // still wildcard by the legacy rule
		}
		d.legacy = false
	}
	// Subscriptions first, then unsubscriptions, as go-control-plane.
	for _, name := range sub {
		if name == wildcardName {
			d.wildcard = true
		}
	}
	d.names = ls.updated(d.names, sub, nil)
	for _, name := range unsub {
		switch {
		case name == wildcardName:
			d.wildcard = false
		case d.wildcard && d.names.has(name):
			// Still sent by wildcard: mark it held at no version, so that
			// the next diff sends it again or says it is removed.
			d.hold(name, "")
		default:
			d.drop(name)
		}
	}
	d.names = ls.updated(d.names, nil, unsub)
}

// hold records that the client holds name at version.
func (d *deltaSub) hold(name, version string) {
	if d.extra == nil {
		d.extra = make(map[string]string)
	}
	d.extra[name] = version
}

// drop records that the client no longer holds name.
func (d *deltaSub) drop(name string) {
	delete(d.extra, name)
	if d.base != nil && d.base.byName[name] != nil {
		if d.absent == nil {
			d.absent = make(map[string]struct{})
		}
		d.absent[name] = struct{}{}
	}
}

// held returns the version of name the client holds.
func (d *deltaSub) held(name string) (string, bool) {
	if v, ok := d.extra[name]; ok {
		return v, true
	}
	if _, ok := d.absent[name]; ok {
		return "", false
	}
	if d.base != nil {
		if r := d.base.byName[name]; r != nil {
			return r.version, true
		}
	}
	return "", false
}

// simple reports whether the client holds exactly base.
func (d *deltaSub) simple() bool { return len(d.extra) == 0 && len(d.absent) == 0 }

// current reports whether diff against rs must find nothing: rs is what
// the client holds and nothing changed since.
func (d *deltaSub) current(rs *resourceSet) bool {
	return !d.dirty && !d.answer && d.base == rs
}

// diff returns what a response must carry for the client to hold rs's
// resources in its subscription: those whose version differs from the held
// one, sorted by name, and the names held that rs lacks, sorted.
func (d *deltaSub) diff(rs *resourceSet) (out []*resource, removed []string) {
	if !d.wildcard {
		for _, name := range d.names.all() {
			v, ok := d.held(name)
			if r := rs.byName[name]; r != nil {
				if !ok || v != r.version {
					out = append(out, r)
				}
			} else if ok {
				removed = append(removed, name)
			}
		}
		return out, removed
	}
	if d.simple() {
		return setDiff(d.base, rs)
	}
	for _, r := range rs.sorted {
		if v, ok := d.held(r.name); !ok || v != r.version {
			out = append(out, r)
		}
	}
	var base []*resource
	if d.base != nil {
		base = d.base.sorted
	}
	for _, r := range base {
		if _, gone := d.absent[r.name]; !gone && rs.byName[r.name] == nil {
			if _, over := d.extra[r.name]; !over {
				removed = append(removed, r.name)
			}
		}
	}
	for name := range d.extra {
		if rs.byName[name] == nil {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return out, removed
}

// setDiff is diff for a client holding exactly from (nil: nothing): one
// walk of both sorted sets, without lookups. Resources shared by both are
// the same pointer, so most steps compare no strings.
func setDiff(from, to *resourceSet) (out []*resource, removed []string) {
	var a []*resource
	if from != nil {
		a = from.sorted
	}
	b := to.sorted
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] == b[j] {
			i, j = i+1, j+1
			continue
		}
		switch c := strings.Compare(a[i].name, b[j].name); {
		case c == 0:
			if a[i].version != b[j].version {
				out = append(out, b[j])
			}
			i, j = i+1, j+1
		case c < 0:
			removed = append(removed, a[i].name)
			i++
		default:
			out = append(out, b[j])
			j++
		}
	}
	for ; i < len(a); i++ {
		removed = append(removed, a[i].name)
	}
	return append(out, b[j:]...), removed
}

// commit records that the client holds rs's resources in its subscription,
// after a response with diff(rs) (sent: true) or when diff found nothing.
// A response drops what the client holds outside its subscription (it
// dropped it itself when it unsubscribed); without one that is kept, as
// go-control-plane keeps a stream's returned versions until its next
// response.
func (d *deltaSub) commit(rs *resourceSet, sent bool) {
	d.dirty = false
	d.answer = false
	if d.wildcard {
		d.base, d.absent, d.extra = rs, nil, nil
		return
	}
	var carry map[string]string
	if !sent {
		carry = d.outside()
	}
	defer func() {
		for name, v := range carry {
			d.hold(name, v)
		}
	}()
	// Held: rs ∩ names. Either base rs minus the names not subscribed, or
	// the held names alone, whichever is smaller: a sidecar subscribes to
	// its whole set, a client asking for a few names holds a few.
	var absent []string
	heldN := 0
	names := d.names.all()
	i := 0
	for _, r := range rs.sorted {
		for i < len(names) && names[i] < r.name {
			i++
		}
		if i < len(names) && names[i] == r.name {
			heldN++
		} else {
			absent = append(absent, r.name)
		}
	}
	d.extra, d.absent = nil, nil
	if len(absent) <= heldN {
		d.base = rs
		if len(absent) > 0 {
			d.absent = make(map[string]struct{}, len(absent))
			for _, name := range absent {
				d.absent[name] = struct{}{}
			}
		}
		return
	}
	d.base = nil
	if heldN > 0 {
		d.extra = make(map[string]string, heldN)
		for _, name := range names {
			if r := rs.byName[name]; r != nil {
				d.extra[r.name] = r.version
			}
		}
	}
}

// outside returns the names held but not subscribed, with their versions;
// nil when there are none (the usual case).
func (d *deltaSub) outside() map[string]string {
	var out map[string]string
	add := func(name, v string) {
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = v
	}
	if d.base != nil {
		for _, r := range d.base.sorted {
			if _, gone := d.absent[r.name]; gone || d.names.has(r.name) {
				continue
			}
			if _, over := d.extra[r.name]; !over {
				add(r.name, r.version)
			}
		}
	}
	for name, v := range d.extra {
		if !d.names.has(name) {
			add(name, v)
		}
	}
	return out
}
