package upstream

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Clock returns the current time.
type Clock func() time.Time

// Options configure a Set. Zero values are documented per field.
type Options struct {
	// Clock; nil uses time.Now.
	Clock Clock
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// OnEject, when set, is called (without locks held) when outlier
	// detection ejects a host (ejected true) or returns it.
	OnEject func(cluster, addr string, ejected bool)
}

// Set is the upstream state of every cluster, by name. It outlives
// configs; Update it with each config's clusters.
type Set struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex
	m    map[string]*Cluster
}

// NewSet returns an empty set.
func NewSet(opts Options) *Set {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Set{opts: opts, log: log.With("component", "upstream"), m: map[string]*Cluster{}}
}

// Update returns the state of the clusters of a config, by name, creating
// or updating each; clusters not in clusters are dropped.
func (s *Set) Update(clusters map[string]*runtime.Cluster) map[string]*Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*Cluster, len(clusters))
	for name, rc := range clusters {
		c := s.m[name]
		if c == nil {
			c = &Cluster{name: name, set: s}
		}
		c.update(rc)
		out[name] = c
	}
	s.m = out
	return out
}

// Cluster is one cluster's upstream state. It implements lb.Picker and
// lb.Chooser over its current endpoints and ejections.
type Cluster struct {
	name     string
	set      *Set
	Breakers Breakers

	picker    atomic.Pointer[pickerBox]
	nextCheck atomic.Int64 // unix nanos when an ejection or warm-up ends; 0: none

	mu     sync.Mutex // guards the fields below
	rc     *runtime.Cluster
	det    *detector // nil without outlier detection
	added  map[string]time.Time
	warmUp time.Time // when the last slow start ends
}

type pickerBox struct{ p lb.Chooser }

// Name returns the cluster name.
func (c *Cluster) Name() string { return c.name }

// Config returns the cluster's current config.
func (c *Cluster) Config() *runtime.Cluster {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rc
}

func (c *Cluster) update(rc *runtime.Cluster) {
	now := c.set.opts.Clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.rc == nil
	c.rc = rc
	c.Breakers.set(rc.CircuitBreakers)
	present := make(map[string]bool, len(rc.Endpoints))
	for i := range rc.Endpoints {
		present[rc.Endpoints[i].Address()] = true
	}
	// First-seen times for slow start: the hosts of a cluster's first
	// config count as warm, and so do the hosts present when a config
	// turns slow start on (Envoy builds a new cluster then, whose initial
	// hosts do not ramp). Clusters without slow start keep no times:
	// a map per cluster and an entry per endpoint (issue 5).
	if ss := rc.LBConfig.SlowStart; ss == nil || ss.Window <= 0 {
		c.added = nil
	} else if c.added == nil {
		c.added = make(map[string]time.Time, len(present))
		first = true
	}
	if c.added != nil {
		for addr := range present {
			if _, ok := c.added[addr]; !ok {
				if first {
					c.added[addr] = time.Time{}
				} else {
					c.added[addr] = now
				}
			}
		}
		for addr := range c.added {
			if !present[addr] {
				delete(c.added, addr)
			}
		}
	}
	if rc.Outlier == nil {
		c.det = nil
	} else {
		if c.det == nil {
			c.det = &detector{hosts: map[string]*hostStat{}}
		}
		c.det.cfg = rc.Outlier
		c.det.total = len(present)
		for addr := range present {
			if c.det.hosts[addr] == nil {
				c.det.hosts[addr] = &hostStat{}
			}
		}
		for addr := range c.det.hosts {
			if !present[addr] {
				delete(c.det.hosts, addr)
			}
		}
	}
	c.rebuild(now)
}

// rebuild makes a new picker from the current state. c.mu is held.
func (c *Cluster) rebuild(now time.Time) {
	var next time.Time
	var ejected map[string]bool
	if c.det != nil {
		_, next = c.det.expire(now)
		ejected = c.det.ejected()
	}
	added := c.added
	if ss := c.rc.LBConfig.SlowStart; ss != nil && ss.Window > 0 {
		for _, t := range c.added {
			if end := t.Add(ss.Window); !t.IsZero() && end.After(now) && (next.IsZero() || end.Before(next)) {
				next = end
			}
		}
	} else {
		added = nil
	}
	p := lb.NewWith(c.rc, lb.Options{Ejected: ejected, Added: added, Now: now})
	c.picker.Store(&pickerBox{p.(lb.Chooser)})
	if next.IsZero() {
		c.nextCheck.Store(0)
	} else {
		c.nextCheck.Store(next.UnixNano())
	}
}

// current returns the picker, first rebuilding it when an ejection or a
// warm-up has ended.
func (c *Cluster) current() lb.Chooser {
	if n := c.nextCheck.Load(); n != 0 {
		now := c.set.opts.Clock()
		if now.UnixNano() >= n {
			c.mu.Lock()
			var returned []string
			if c.det != nil {
				before := c.det.ejected()
				c.rebuild(now)
				after := c.det.ejected()
				for addr := range before {
					if !after[addr] {
						returned = append(returned, addr)
					}
				}
			} else {
				c.rebuild(now)
			}
			c.mu.Unlock()
			for _, addr := range returned {
				c.set.log.Info("outlier host returned", "cluster", c.name, "host", addr)
				if f := c.set.opts.OnEject; f != nil {
					f(c.name, addr, false)
				}
			}
		}
	}
	return c.picker.Load().p
}

// Pick implements lb.Picker.
func (c *Cluster) Pick() (lb.Result, bool) { return c.current().Choose(lb.Choice{}) }

// Choose implements lb.Chooser.
func (c *Cluster) Choose(ch lb.Choice) (lb.Result, bool) { return c.current().Choose(ch) }

// Report records the outcome of an attempt on addr for outlier detection.
func (c *Cluster) Report(addr string, o Outcome) {
	c.mu.Lock()
	if c.det == nil {
		c.mu.Unlock()
		return
	}
	now := c.set.opts.Clock()
	ejected := c.det.report(addr, o, now)
	if ejected {
		c.rebuild(now)
	}
	c.mu.Unlock()
	if ejected {
		c.set.log.Info("outlier host ejected", "cluster", c.name, "host", addr)
		if f := c.set.opts.OnEject; f != nil {
			f(c.name, addr, true)
		}
	}
}

// Ejected returns the addresses currently ejected.
func (c *Cluster) Ejected() map[string]bool {
	c.current()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.det == nil {
		return nil
	}
	return c.det.ejected()
}

var (
	_ lb.Picker  = (*Cluster)(nil)
	_ lb.Chooser = (*Cluster)(nil)
)
