package lb

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// maxSchedule bounds the round-robin schedule length; weights whose reduced
// sum exceeds it are scaled down proportionally (each stays at least 1).
const maxSchedule = 1 << 14

// maxSmoothWork bounds hosts×schedule length for the O(n) per step smooth
// WRR build; larger clusters use an O(log n) per step EDF build.
const maxSmoothWork = 1 << 20

type host struct {
	ep     *runtime.Endpoint
	addr   string
	weight uint64
	ramp   *ramp // nil: not in slow start
}

// ramp is a slow-starting host's state: a host added less than window ago
// ramps up. Kept apart so that the hosts of the common config (no slow
// start) stay small (issue 5: bytes per endpoint).
type ramp struct {
	added      time.Time
	window     time.Duration
	aggression float64
	minFactor  float64
}

func newHost(e *runtime.Endpoint, ss *runtime.SlowStart, o Options) host {
	w := uint64(e.Weight)
	if w == 0 {
		w = 1
	}
	h := host{ep: e, addr: e.Address(), weight: w}
	if ss == nil || ss.Window <= 0 {
		return h
	}
	added, ok := o.Added[h.addr]
	if !ok {
		return h
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if now.Sub(added) >= ss.Window {
		return h
	}
	r := &ramp{added: added, window: ss.Window, aggression: ss.Aggression, minFactor: ss.MinWeightPercent / 100}
	if r.aggression <= 0 {
		r.aggression = 1
	}
	if ss.MinWeightPercent == 0 {
		r.minFactor = 0.1
	}
	h.ramp = r
	return h
}

// factor is the slow-start weight multiplier at now, in (0, 1].
func (h *host) factor(now time.Time) float64 {
	r := h.ramp
	if r == nil {
		return 1
	}
	age := now.Sub(r.added)
	if age >= r.window {
		return 1
	}
	f := math.Pow(max(float64(age), 0)/float64(r.window), 1/r.aggression)
	return max(f, r.minFactor)
}

func warming(hosts []host) bool {
	for i := range hosts {
		if hosts[i].ramp != nil {
			return true
		}
	}
	return false
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

func (rr *roundRobin) choose(uint64) (Result, bool) {
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

// leastRequest picks the least loaded of ChoiceCount random hosts
// (power of two choices by default) by in-flight requests, weighted as
// Envoy does: lower (active+1)/weight wins.
type leastRequest struct {
	hosts   []host
	active  []paddedCounter
	choices int
}

// paddedCounter keeps counters of neighbouring hosts on separate cache lines.
type paddedCounter struct {
	n atomic.Int64
	_ [56]byte
}

func newLeastRequest(hosts []host, choices uint32) *leastRequest {
	if choices < 2 {
		choices = 2
	}
	return &leastRequest{hosts: hosts, active: make([]paddedCounter, len(hosts)), choices: int(choices)}
}

// better reports whether host j beats host i.
func (lr *leastRequest) better(j, i int) bool {
	ai := uint64(lr.active[i].n.Load()) + 1
	aj := uint64(lr.active[j].n.Load()) + 1
	// Cross-multiplied to stay in integers.
	return aj*lr.hosts[i].weight < ai*lr.hosts[j].weight
}

func (lr *leastRequest) choose(uint64) (Result, bool) {
	n := len(lr.hosts)
	i := 0
	switch {
	case n == 1:
	case lr.choices == 2:
		// Two distinct choices.
		i = rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		if lr.better(j, i) {
			i = j
		}
	default:
		i = rand.IntN(n)
		for range lr.choices - 1 {
			if j := rand.IntN(n); lr.better(j, i) {
				i = j
			}
		}
	}
	c := &lr.active[i].n
	c.Add(1)
	r := lr.hosts[i].result()
	r.active = c
	return r, true
}

// random is weighted random selection; with slow start it recomputes the
// ramped weights on every pick.
type random struct {
	hosts   []host
	cum     []uint64 // cumulative weights; nil when all weights are equal
	dynamic bool
}

func newRandom(hosts []host, dynamic bool) *random {
	r := &random{hosts: hosts, dynamic: dynamic}
	if !dynamic && !equalWeights(hosts) {
		r.cum = make([]uint64, len(hosts))
		var s uint64
		for i, h := range hosts {
			s += h.weight
			r.cum[i] = s
		}
	}
	return r
}

func (r *random) choose(uint64) (Result, bool) {
	if r.dynamic {
		now := time.Now()
		total := 0.0
		for i := range r.hosts {
			total += float64(r.hosts[i].weight) * r.hosts[i].factor(now)
		}
		x := rand.Float64() * total
		for i := range r.hosts {
			x -= float64(r.hosts[i].weight) * r.hosts[i].factor(now)
			if x < 0 {
				return r.hosts[i].result(), true
			}
		}
		return r.hosts[len(r.hosts)-1].result(), true
	}
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
	_ hostPicker = (*roundRobin)(nil)
	_ hostPicker = (*leastRequest)(nil)
	_ hostPicker = (*random)(nil)
)
