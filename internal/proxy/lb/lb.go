package lb

import (
	"container/heap"
	"math/rand/v2"
	"sync/atomic"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// maxSchedule bounds the round-robin schedule length; weights whose reduced
// sum exceeds it are scaled down proportionally (each stays at least 1).
const maxSchedule = 1 << 14

// maxSmoothWork bounds hosts×schedule length for the O(n) per step smooth
// WRR build; larger clusters use an O(log n) per step EDF build.
const maxSmoothWork = 1 << 20

// Picker chooses an endpoint of one cluster.
//
// Pick MUST NOT block and is safe for concurrent use. It returns false when
// the cluster has no healthy endpoint. Every successful Pick MUST be followed
// by exactly one Result.Done once the request or connection ends.
type Picker interface {
	Pick() (Result, bool)
}

// Result is one chosen endpoint.
type Result struct {
	// Endpoint is the chosen endpoint; it belongs to the config and MUST NOT
	// be modified.
	Endpoint *runtime.Endpoint
	// Addr is Endpoint.Address(), computed once per config.
	Addr string

	active *atomic.Int64 // in-flight counter for LeastRequest; nil otherwise
}

// Done reports that the request or connection using r has ended. Calling
// Done on the zero Result is a no-op.
func (r Result) Done() {
	if r.active != nil {
		r.active.Add(-1)
	}
}

// New builds the picker for c. It never fails: a cluster without healthy
// endpoints gets a picker whose Pick returns false.
func New(c *runtime.Cluster) Picker {
	hosts := healthy(c.Endpoints)
	if len(hosts) == 0 {
		return none{}
	}
	switch c.LB {
	case runtime.LeastRequest:
		return newLeastRequest(hosts)
	case runtime.Random:
		return newRandom(hosts)
	default:
		return newRoundRobin(hosts)
	}
}

// Build returns a picker per cluster, keyed by cluster name.
func Build(clusters map[string]*runtime.Cluster) map[string]Picker {
	out := make(map[string]Picker, len(clusters))
	for name, c := range clusters {
		out[name] = New(c)
	}
	return out
}

type host struct {
	ep     *runtime.Endpoint
	addr   string
	weight uint64
}

// healthy returns the healthy endpoints of the lowest priority that has any.
func healthy(eps []runtime.Endpoint) []host {
	best := ^uint32(0)
	for i := range eps {
		if eps[i].Healthy && eps[i].Priority < best {
			best = eps[i].Priority
		}
	}
	var hosts []host
	for i := range eps {
		e := &eps[i]
		if !e.Healthy || e.Priority != best {
			continue
		}
		w := uint64(e.Weight)
		if w == 0 {
			w = 1
		}
		hosts = append(hosts, host{ep: e, addr: e.Address(), weight: w})
	}
	return hosts
}

func (h host) result() Result { return Result{Endpoint: h.ep, Addr: h.addr} }

func equalWeights(hosts []host) bool {
	for _, h := range hosts[1:] {
		if h.weight != hosts[0].weight {
			return false
		}
	}
	return true
}

type none struct{}

func (none) Pick() (Result, bool) { return Result{}, false }

// roundRobin walks a precomputed schedule of host indexes.
type roundRobin struct {
	hosts    []host
	schedule []uint32 // nil when all weights are equal: plain rotation
	next     atomic.Uint64
}

func newRoundRobin(hosts []host) *roundRobin {
	rr := &roundRobin{hosts: hosts}
	if !equalWeights(hosts) {
		rr.schedule = schedule(hosts)
	}
	n := uint64(len(hosts))
	if rr.schedule != nil {
		n = uint64(len(rr.schedule))
	}
	rr.next.Store(rand.Uint64N(n))
	return rr
}

func (rr *roundRobin) Pick() (Result, bool) {
	i := rr.next.Add(1) - 1
	if rr.schedule == nil {
		return rr.hosts[i%uint64(len(rr.hosts))].result(), true
	}
	return rr.hosts[rr.schedule[i%uint64(len(rr.schedule))]].result(), true
}

// schedule returns one period of an earliest-deadline-first walk over the
// weighted hosts: host i appears weight_i times (after reduction), spread
// evenly, as in smooth weighted round robin.
func schedule(hosts []host) []uint32 {
	weights := make([]uint64, len(hosts))
	g := uint64(0)
	for i, h := range hosts {
		weights[i] = h.weight
		g = gcd(g, h.weight)
	}
	var sum uint64
	for i := range weights {
		weights[i] /= g
		sum += weights[i]
	}
	if sum > maxSchedule {
		scaled := uint64(0)
		for i := range weights {
			weights[i] = max(1, weights[i]*maxSchedule/sum)
			scaled += weights[i]
		}
		sum = scaled
	}
	if uint64(len(hosts))*sum <= maxSmoothWork {
		return smooth(weights, sum)
	}
	q := make(edfQueue, len(hosts))
	for i, w := range weights {
		q[i] = edfEntry{deadline: 1 / float64(w), step: 1 / float64(w), idx: uint32(i)}
	}
	heap.Init(&q)
	out := make([]uint32, 0, sum)
	for uint64(len(out)) < sum {
		e := &q[0]
		out = append(out, e.idx)
		e.deadline += e.step
		heap.Fix(&q, 0)
	}
	return out
}

// smooth is nginx's smooth weighted round robin run for one period: every
// step each host gains its weight, the richest is picked and pays the total.
func smooth(weights []uint64, sum uint64) []uint32 {
	cur := make([]int64, len(weights))
	out := make([]uint32, 0, sum)
	for uint64(len(out)) < sum {
		best := 0
		for i, w := range weights {
			cur[i] += int64(w)
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(sum)
		out = append(out, uint32(best))
	}
	return out
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type edfEntry struct {
	deadline, step float64
	idx            uint32
}

type edfQueue []edfEntry

func (q edfQueue) Len() int { return len(q) }
func (q edfQueue) Less(i, j int) bool {
	if q[i].deadline != q[j].deadline {
		return q[i].deadline < q[j].deadline
	}
	return q[i].idx < q[j].idx
}
func (q edfQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *edfQueue) Push(x any)   { *q = append(*q, x.(edfEntry)) }
func (q *edfQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// leastRequest is power of two choices over in-flight request counts.
type leastRequest struct {
	hosts  []host
	active []paddedCounter
}

// paddedCounter keeps counters of neighbouring hosts on separate cache lines.
type paddedCounter struct {
	n atomic.Int64
	_ [56]byte
}

func newLeastRequest(hosts []host) *leastRequest {
	return &leastRequest{hosts: hosts, active: make([]paddedCounter, len(hosts))}
}

func (lr *leastRequest) Pick() (Result, bool) {
	n := len(lr.hosts)
	i := 0
	if n > 1 {
		i = rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		// Lower (active+1)/weight wins; cross-multiplied to stay in integers.
		ai := uint64(lr.active[i].n.Load()) + 1
		aj := uint64(lr.active[j].n.Load()) + 1
		if aj*lr.hosts[i].weight < ai*lr.hosts[j].weight {
			i = j
		}
	}
	c := &lr.active[i].n
	c.Add(1)
	r := lr.hosts[i].result()
	r.active = c
	return r, true
}

// random is weighted random selection.
type random struct {
	hosts []host
	cum   []uint64 // cumulative weights; nil when all weights are equal
}

func newRandom(hosts []host) *random {
	r := &random{hosts: hosts}
	if !equalWeights(hosts) {
		r.cum = make([]uint64, len(hosts))
		var s uint64
		for i, h := range hosts {
			s += h.weight
			r.cum[i] = s
		}
	}
	return r
}

func (r *random) Pick() (Result, bool) {
	if r.cum == nil {
		return r.hosts[rand.IntN(len(r.hosts))].result(), true
	}
	x := rand.Uint64N(r.cum[len(r.cum)-1])
	lo, hi := 0, len(r.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return r.hosts[lo].result(), true
}

var (
	_ Picker = none{}
	_ Picker = (*roundRobin)(nil)
	_ Picker = (*leastRequest)(nil)
	_ Picker = (*random)(nil)
)
