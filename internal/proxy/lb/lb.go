package lb

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Envoy's constants for priority load and locality weights.
const (
	overprovisioning = 140 // percent: overprovisioning_factor 1.4
	defaultPanic     = 50  // percent: healthy_panic_threshold default
)

// Picker chooses an endpoint of one cluster.
//
// Pick MUST NOT block and is safe for concurrent use. It returns false when
// the cluster has no healthy endpoint. Every successful Pick MUST be followed
// by exactly one Result.Done once the request or connection ends.
type Picker interface {
	Pick() (Result, bool)
}

// Chooser is a Picker that takes the request's hash and retry state into
// account. Every picker New returns implements it.
type Chooser interface {
	Choose(c Choice) (Result, bool)
}

// Choice is what a request contributes to a pick. The zero value is a plain
// Pick.
type Choice struct {
	// Hash is the request's hash (route hash_policy); used by RING_HASH and
	// MAGLEV and to choose a priority level. Without HasHash a random value
	// is used, as Envoy does.
	Hash    uint64
	HasHash bool
	// SkipPriorities is a bit set of priority levels (bit p for priority p
	// below 64) to avoid when another level can take the load: retry_priority
	// previous_priorities.
	SkipPriorities uint64
	// Dest is the request's own destination (host:port) for an ORIGINAL_DST
	// cluster.
	Dest string
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

// Options shape a picker beyond the cluster's config. The zero value is a
// picker over the endpoints EDS marks healthy.
type Options struct {
	// Ejected holds the addresses (Endpoint.Address) outlier detection has
	// ejected: they count as unhealthy, and are used only in panic.
	Ejected map[string]bool
	// Added holds when each address was first seen, for slow start; a
	// missing address counts as long warmed up.
	Added map[string]time.Time
	// Now is the build time for slow start; zero means time.Now().
	Now time.Time
}

// New builds the picker for c. It never fails: a cluster without healthy
// endpoints gets a picker whose Pick returns false.
func New(c *runtime.Cluster) Picker { return NewWith(c, Options{}) }

// Build returns a picker per cluster, keyed by cluster name.
func Build(clusters map[string]*runtime.Cluster) map[string]Picker {
	out := make(map[string]Picker, len(clusters))
	for name, c := range clusters {
		out[name] = New(c)
	}
	return out
}

// NewWith builds the picker for c with outlier and slow-start state.
//
// Priority levels follow Envoy: a level's health is 1.4 × its share of
// healthy hosts (capped at 100%); levels take load in priority order up to
// their health, and the total is normalised to 100%. A level whose healthy
// share is below the panic threshold while the cluster as a whole is short
// of capacity routes to all its hosts, ejected ones included. Hosts EDS
// marks unhealthy are never picked, even in panic: Istio leaves them out of
// EDS altogether, and trellisd sends them only so that they count.
func NewWith(c *runtime.Cluster, o Options) Picker {
	if c.LB == runtime.OriginalDst {
		return originalDst{}
	}
	panicAt := c.LBConfig.PanicThreshold
	if panicAt == 0 {
		panicAt = defaultPanic
	}
	groups := map[uint32][]int{}
	var prios []uint32
	for i := range c.Endpoints {
		p := c.Endpoints[i].Priority
		if groups[p] == nil {
			prios = append(prios, p)
		}
		groups[p] = append(groups[p], i)
	}
	sortU32(prios)
	pk := &picker{}
	type stat struct{ total, healthy, usable int }
	stats := make([]stat, len(prios))
	normTotal := 0
	for li, p := range prios {
		st := stat{total: len(groups[p])}
		for _, i := range groups[p] {
			e := &c.Endpoints[i]
			if e.Healthy {
				st.usable++
				if !o.Ejected[e.Address()] {
					st.healthy++
				}
			}
		}
		stats[li] = st
		normTotal += min(100, overprovisioning*st.healthy/st.total)
	}
	normTotal = min(normTotal, 100)
	for li, p := range prios {
		st := stats[li]
		health := min(100, overprovisioning*st.healthy/st.total)
		inPanic := panicAt > 0 && normTotal < 100 && float64(100*st.healthy) < panicAt*float64(st.total)
		hosts := make([]host, 0, len(groups[p])) // exactly sized: kept for the config's life
		for _, i := range groups[p] {
			e := &c.Endpoints[i]
			if !e.Healthy || (!inPanic && o.Ejected[e.Address()]) {
				continue
			}
			hosts = append(hosts, newHost(e, c.LBConfig.SlowStart, o))
		}
		if len(hosts) == 0 {
			continue
		}
		if normTotal == 0 {
			// Nothing healthy anywhere: Envoy sends everything to the
			// first level, in panic; here, to the first level with
			// ejected-but-EDS-healthy hosts, when panic is enabled.
			if !inPanic || pk.total > 0 {
				continue
			}
			health = 100
		}
		pk.levels = append(pk.levels, level{prio: p, health: uint32(health), hosts: newLevelPicker(c, hosts)})
		pk.total += uint32(health)
	}
	if len(pk.levels) == 0 {
		return none{}
	}
	pk.loads = loads(pk.levels, 0)
	return pk
}

// picker spreads load over priority levels.
type picker struct {
	levels []level
	loads  []uint32 // cumulative load per level, out of 100 (last is 100)
	total  uint32
}

type level struct {
	prio   uint32
	health uint32 // percent, with overprovisioning, capped at 100
	hosts  hostPicker
}

// hostPicker chooses within one priority level.
type hostPicker interface {
	choose(hash uint64) (Result, bool)
}

// loads returns cumulative loads over levels, out of 100, skipping the
// levels in skip while any other level has health.
func loads(levels []level, skip uint64) []uint32 {
	var total uint32
	for _, l := range levels {
		if !skipped(l.prio, skip) {
			total += l.health
		}
	}
	if total == 0 {
		skip = 0
		for _, l := range levels {
			total += l.health
		}
	}
	shares := make([]uint32, len(levels))
	if total == 0 {
		shares[0] = 100
	} else {
		norm, remaining := min(total, 100), uint32(100)
		for i, l := range levels {
			if !skipped(l.prio, skip) {
				shares[i] = min(remaining, l.health*100/norm)
				remaining -= shares[i]
			}
		}
		// Rounding leftovers go to the first level that takes load.
		for i, l := range levels {
			if remaining > 0 && !skipped(l.prio, skip) && l.health > 0 {
				shares[i] += remaining
				break
			}
		}
	}
	var cum uint32
	for i := range shares {
		cum += shares[i]
		shares[i] = cum
	}
	return shares
}

func skipped(prio uint32, skip uint64) bool { return prio < 64 && skip&(1<<prio) != 0 }

func (p *picker) Pick() (Result, bool) { return p.Choose(Choice{}) }

func (p *picker) Choose(c Choice) (Result, bool) {
	h := c.Hash
	if !c.HasHash {
		h = rand.Uint64()
	}
	ls := p.loads
	if c.SkipPriorities != 0 {
		ls = loads(p.levels, c.SkipPriorities)
	}
	i := 0
	if len(p.levels) > 1 {
		x := uint32(h % 100)
		for i < len(ls)-1 && x >= ls[i] {
			i++
		}
	}
	return p.levels[i].hosts.choose(h)
}

// Priority returns the priority of the level r came from.
func Priority(r Result) uint32 {
	if r.Endpoint == nil {
		return 0
	}
	return r.Endpoint.Priority
}

// newLevelPicker builds the host picker of one level for c's policy.
func newLevelPicker(c *runtime.Cluster, hosts []host) hostPicker {
	switch c.LB {
	case runtime.RingHash:
		return newRing(hosts, c.LBConfig.RingMin, c.LBConfig.RingMax)
	case runtime.Maglev:
		return newMaglev(hosts, c.LBConfig.MaglevTableSize)
	}
	if c.LBConfig.LocalityWeighted {
		if lp := newLocalities(c, hosts); lp != nil {
			return lp
		}
	}
	return newFlat(c, hosts)
}

func newFlat(c *runtime.Cluster, hosts []host) hostPicker {
	if warming(hosts) {
		return newRandom(hosts, true)
	}
	switch c.LB {
	case runtime.LeastRequest:
		return newLeastRequest(hosts, c.LBConfig.ChoiceCount)
	case runtime.Random:
		return newRandom(hosts, false)
	default:
		return newRoundRobin(hosts)
	}
}

// localities chooses a locality by effective weight, then a host in it.
type localities struct {
	cum   []uint64 // cumulative effective weights
	picks []hostPicker
}

// newLocalities groups hosts by locality. The effective weight of a
// locality is its LocalityWeight × min(100%, 1.4 × its healthy share), as
// Envoy's locality_weighted_lb_config. It returns nil with one locality.
func newLocalities(c *runtime.Cluster, hosts []host) hostPicker {
	type group struct {
		hosts        []host
		weight       uint64
		total, avail int
	}
	var order []runtime.Locality
	groups := map[runtime.Locality]*group{}
	for _, h := range hosts {
		g := groups[h.ep.Locality]
		if g == nil {
			g = &group{weight: uint64(max(h.ep.LocalityWeight, 1))}
			groups[h.ep.Locality] = g
			order = append(order, h.ep.Locality)
		}
		g.hosts = append(g.hosts, h)
	}
	if len(order) < 2 {
		return nil
	}
	for i := range c.Endpoints {
		if g := groups[c.Endpoints[i].Locality]; g != nil {
			g.total++
		}
	}
	lp := &localities{}
	var cum uint64
	for _, loc := range order {
		g := groups[loc]
		health := min(100, uint64(overprovisioning*len(g.hosts)/max(g.total, 1)))
		cum += g.weight * health
		lp.cum = append(lp.cum, cum)
		lp.picks = append(lp.picks, newFlat(c, g.hosts))
	}
	if cum == 0 {
		return nil
	}
	return lp
}

func (l *localities) choose(h uint64) (Result, bool) {
	x := rand.Uint64N(l.cum[len(l.cum)-1])
	i := 0
	for x >= l.cum[i] {
		i++
	}
	return l.picks[i].choose(h)
}

type none struct{}

func (none) Pick() (Result, bool)         { return Result{}, false }
func (none) Choose(Choice) (Result, bool) { return Result{}, false }

// originalDst routes to the request's own destination (CLUSTER_PROVIDED
// with an ORIGINAL_DST cluster): Choice.Dest when it is an IP address and
// port.
type originalDst struct{}

func (originalDst) Pick() (Result, bool) { return Result{}, false }

func (originalDst) Choose(c Choice) (Result, bool) {
	ap, err := netip.ParseAddrPort(c.Dest)
	if err != nil || ap.Port() == 0 {
		return Result{}, false
	}
	ep := &runtime.Endpoint{Host: ap.Addr().Unmap().String(), Port: ap.Port(), Weight: 1, Healthy: true}
	return Result{Endpoint: ep, Addr: ep.Host + ":" + strconv.Itoa(int(ep.Port))}, true
}

func sortU32(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

var (
	_ Chooser = none{}
	_ Chooser = (*picker)(nil)
	_ Chooser = originalDst{}
)
