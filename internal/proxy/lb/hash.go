package lb

import (
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Envoy's ring and table sizes.
const (
	defaultRingMin    = 1024
	defaultRingMax    = 8 << 20
	defaultMaglevSize = 65537
)

// ring is Envoy's ring hash: every host owns points on a 64-bit ring in
// proportion to its weight; a request goes to the first point at or after
// its hash. Adding or removing a host moves only the keys of its points.
type ring struct {
	points []uint64
	hosts  []uint32 // host index per point
	all    []host
}

func newRing(hosts []host, minSize, maxSize uint64) *ring {
	if minSize == 0 {
		minSize = defaultRingMin
	}
	if maxSize == 0 {
		maxSize = defaultRingMax
	}
	minSize = min(minSize, maxSize)
	var sum, least uint64
	for i, h := range hosts {
		sum += h.weight
		if i == 0 || h.weight < least {
			least = h.weight
		}
	}
	// Scale so that the lightest host gets at least one point and the
	// ring holds at least minSize points, as Envoy sizes it.
	scale := float64(minSize) / float64(sum)
	if s := 1 / float64(least); s > scale {
		scale = s
	}
	if float64(sum)*scale > float64(maxSize) {
		scale = float64(maxSize) / float64(sum)
	}
	r := &ring{all: hosts}
	type point struct {
		hash uint64
		host uint32
	}
	var pts []point
	buf := make([]byte, 0, 64)
	for i, h := range hosts {
		n := max(1, uint64(float64(h.weight)*scale+0.5))
		for k := range n {
			buf = append(buf[:0], h.addr...)
			buf = append(buf, '_')
			buf = strconv.AppendUint(buf, k, 10)
			pts = append(pts, point{xxhash.Sum64(buf), uint32(i)})
		}
	}
	sort.Slice(pts, func(a, b int) bool {
		if pts[a].hash != pts[b].hash {
			return pts[a].hash < pts[b].hash
		}
		return pts[a].host < pts[b].host
	})
	r.points = make([]uint64, len(pts))
	r.hosts = make([]uint32, len(pts))
	for i, p := range pts {
		r.points[i], r.hosts[i] = p.hash, p.host
	}
	return r
}

func (r *ring) choose(h uint64) (Result, bool) {
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.all[r.hosts[i]].result(), true
}

// maglev is Google's Maglev consistent hashing with Envoy's weighting: a
// prime-sized table filled by each host's permutation, heavier hosts taking
// turns more often; a request goes to table[hash mod size].
type maglev struct {
	table []uint32
	all   []host
}

func newMaglev(hosts []host, size uint64) *maglev {
	if size == 0 {
		size = defaultMaglevSize
	}
	type entry struct {
		offset, skip, next uint64
		weight, target     float64
	}
	var maxW uint64
	for _, h := range hosts {
		maxW = max(maxW, h.weight)
	}
	es := make([]entry, len(hosts))
	for i, h := range hosts {
		es[i] = entry{
			offset: xxhash.Sum64String(h.addr) % size,
			skip:   xxhash.Sum64String(h.addr+"#skip")%(size-1) + 1,
			weight: float64(h.weight) / float64(maxW),
		}
	}
	const empty = ^uint32(0)
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	filled := uint64(0)
	for iter := 1.0; filled < size; iter++ {
		for i := range es {
			if filled == size {
				break
			}
			e := &es[i]
			// A host of full weight fills a slot every round; one of a
			// third of it, every third round.
			if iter*e.weight < e.target {
				continue
			}
			e.target++
			c := (e.offset + e.next*e.skip) % size
			for table[c] != empty {
				e.next++
				c = (e.offset + e.next*e.skip) % size
			}
			table[c] = uint32(i)
			e.next++
			filled++
		}
	}
	return &maglev{table: table, all: hosts}
}

func (m *maglev) choose(h uint64) (Result, bool) {
	return m.all[m.table[h%uint64(len(m.table))]].result(), true
}

var (
	_ hostPicker = (*ring)(nil)
	_ hostPicker = (*maglev)(nil)
)
