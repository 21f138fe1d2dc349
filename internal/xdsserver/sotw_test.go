package xdsserver

import (
	"maps"
	"slices"
	"strconv"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
)

// refSotw is one type of go-control-plane's ADS state-of-the-world server
// (its watch, nonce check and stream.Subscription) with the responses the
// sidecar cache computed before sotwStream (refSotwResponse): the
// reference sotwSub must agree with.
type refSotw struct {
	opened, open bool
	sub          streamv3.Subscription
	nonce        string
	version      string
}

func (r *refSotw) request(names []string, version, nonce string) {
	if r.opened && r.nonce != "" && nonce != r.nonce {
		return // stale
	}
	if !r.opened {
		r.sub = streamv3.NewSotwSubscription(names, true)
		r.opened = true
	} else {
		r.sub.SetResourceSubscription(names)
	}
	r.open, r.version = true, version
}

func (r *refSotw) flush(url string, rs *resourceSet, nonce string) step {
	if !r.open {
		return step{}
	}
	out, next, ok := refSotwResponse(url, r.version, r.sub, rs)
	if !ok {
		return step{}
	}
	r.sub.SetReturnedResources(next)
	r.open, r.nonce = false, nonce
	return sentStep(out)
}

func sentStep(out []*resource) step {
	s := step{Respond: true}
	for _, r := range out {
		s.Sent = append(s.Sent, r.name+"="+r.version)
	}
	return s
}

// refSotwResponse is the sidecar cache's state-of-the-world response
// before sotwStream: what it sent and the stream's returned versions after.
func refSotwResponse(url, version string, sub streamv3.Subscription, rs *resourceSet) ([]*resource, map[string]string, bool) {
	full := cachev3.ResourceRequiresFullStateInSotw(url)
	changed := version != rs.version
	if full && sub.IsWildcard() {
		return rs.sorted, nil, changed
	}
	returned := sub.ReturnedResources()
	var all, out []*resource
	pick := func(r *resource) {
		all = append(all, r)
		if v, ok := returned[r.name]; !ok || v != r.version {
			out = append(out, r)
		}
	}
	subscribed := sub.SubscribedResources()
	if sub.IsWildcard() {
		for _, r := range rs.sorted {
			pick(r)
		}
	} else {
		for _, r := range rs.sorted {
			if _, ok := subscribed[r.name]; ok {
				pick(r)
			}
		}
	}
	if !changed && len(out) == 0 {
		return nil, nil, false
	}
	if full {
		out = all
	}
	next := maps.Clone(returned)
	if next == nil {
		next = map[string]string{}
	}
	for _, r := range out {
		next[r.name] = r.version
	}
	for name := range next {
		_, ok := subscribed[name]
		if rs.byName[name] == nil || !(ok || sub.IsWildcard()) {
			delete(next, name)
		}
	}
	return out, next, true
}

// FuzzSotwSub drives sotwSub and the reference with the same requests
// (names, "*", versions, current and stale nonces) and sets, for a
// full-state type (CDS) and a partial one (EDS), and checks they send the
// same.
func FuzzSotwSub(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{1, 0x05, 0x0a, 0, 1, 0x1e, 0x16, 3, 0x25, 0x06, 0x41})
	f.Add([]byte{0x80, 0x01, 0x0f, 0x00, 0x03, 0x21, 0x0e, 0x52, 0x04, 0x31})
	names, sets := fuzzSets()
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		url := resourcev3.EndpointType
		if ops[0]&0x80 != 0 {
			url = resourcev3.ClusterType // full state
		}
		var ls nameLists
		var sub sotwSub
		var ref refSotw
		cur := sets[0]
		nonce := 0
		for i := 1; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			if op%4 == 0 {
				cur = sets[int(arg)%len(sets)]
			} else {
				var req []string
				for j, n := range names {
					if arg&(1<<j) != 0 {
						req = append(req, n)
					}
				}
				version := [...]string{"", cur.version, "old", sets[1].version}[op>>2&3]
				answers := [...]string{strconv.Itoa(nonce), "", "0", strconv.Itoa(nonce)}[op>>4&3]
				ref.request(slices.Clone(req), version, answers)
				sub.accept(&ls, req, version, answers)
			}
			n := strconv.Itoa(nonce + 1)
			want := ref.flush(url, cur, n)
			var got step
			if out, ok := sub.next(url, cur); ok {
				got = sentStep(out)
				sub.sent(url, cur, n)
			}
			if want.Respond {
				nonce++
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s op %d (%#x %#x) against %s (-reference +sotwSub):\n%s", typeLabel(url), i/2, op, arg, cur.version, diff)
			}
		}
	})
}

func TestSotwSub(t *testing.T) {
	ss := subSets{}
	v1 := ss.set("a", "1", "b", "1")
	v2 := ss.set("a", "2", "b", "1") // a's endpoints moved
	type op struct {
		names           []string
		version, answer string // the request's version_info and response_nonce
		set             *resourceSet
		want            step
	}
	eds, cds := resourcev3.EndpointType, resourcev3.ClusterType
	for _, tc := range []struct {
		name string
		url  string
		ops  []op
	}{
		{"EDS: only what changed", eds, []op{
			{names: []string{"b", "a"}, set: v1, want: sentStep(v1.sorted)},
			{names: []string{"a", "b"}, version: v1.version, answer: "1", set: v1, want: step{}}, // ACK: nothing
			{set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
		}},
		{"EDS: a name subscribed again is sent again", eds, []op{
			{names: []string{"a", "b"}, set: v1, want: sentStep(v1.sorted)},
			{names: []string{"b"}, version: v1.version, answer: "1", set: v1, want: step{}},
			{names: []string{"a", "b"}, version: v1.version, answer: "1", set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
		}},
		{"EDS: a stale request is ignored", eds, []op{
			{names: []string{"a"}, set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
			{names: []string{"a", "b"}, version: "", answer: "0", set: v1, want: step{}},
			{names: []string{"a"}, version: v1.version, answer: "1", set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
		}},
		{"CDS: full state when the version differs", cds, []op{
			{version: v1.version, set: v1, want: step{}}, // already current
			{version: "old", set: v1, want: sentStep(v1.sorted)},
			{version: v1.version, answer: "1", set: v2, want: sentStep(v2.sorted)},
		}},
		{"CDS by name: every subscribed resource", cds, []op{
			{names: []string{"b", "a"}, set: v1, want: sentStep(v1.sorted)},
			{names: []string{"a", "b"}, version: v1.version, answer: "1", set: v2, want: sentStep(v2.sorted)},
		}},
		{"a NACK (answering the rejected version) re-sends nothing", eds, []op{
			{names: []string{"a"}, set: v1, want: step{Sent: []string{"a=1"}, Respond: true}},
			{names: []string{"a"}, version: v1.version, answer: "1", set: v1, want: step{}},
			{set: v2, want: step{Sent: []string{"a=2"}, Respond: true}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ls nameLists
			var sub sotwSub
			nonce := 0
			for i, o := range tc.ops {
				if o.names != nil || o.version != "" || o.answer != "" || i == 0 {
					sub.accept(&ls, o.names, o.version, o.answer)
				}
				var got step
				if out, ok := sub.next(tc.url, o.set); ok {
					nonce++
					got = sentStep(out)
					sub.sent(tc.url, o.set, strconv.Itoa(nonce))
				}
				if diff := cmp.Diff(o.want, got); diff != "" {
					t.Fatalf("op %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// A snapshot set for a node wakes its streams; a stream's wake-up has one
// slot, so a burst wakes it once.
func TestSetSnapshotWakesStreams(t *testing.T) {
	c := newSidecarCache(internLog)
	wake := make(chan struct{}, 1)
	n := c.watch("n", wake)
	for range 3 {
		if err := c.SetSnapshot(t.Context(), "n", cacheFixture(t, "127.0.0.1", "127.0.0.2")); err != nil {
			t.Fatal(err)
		}
	}
	if len(wake) != 1 || n.snapshot() == nil {
		t.Fatalf("%d wake-ups, snapshot %v; want 1 and the snapshot", len(wake), n.snapshot())
	}
	<-wake
	n.unwatch(wake)
	if err := c.SetSnapshot(t.Context(), "n", cacheFixture(t, "127.0.0.1", "127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if len(wake) != 0 {
		t.Errorf("woken after unwatch")
	}
}
