package health

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Kubernetes' probe defaults, which Istio's WorkloadGroup probe follows.
const (
	defaultPeriod           = 10
	defaultTimeout          = 1
	defaultSuccessThreshold = 1
	defaultFailureThreshold = 3
)

// Options configure a Checker. The zero value is usable.
type Options struct {
	// Logger receives health transitions; nil discards them.
	Logger *slog.Logger
	// Registerer receives the checker's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Checker runs the probes of every WorkloadGroup against the
// WorkloadEntries it selects and remembers which are healthy. A workload no
// probe covers is healthy; a probed workload is unhealthy until its first
// successful probe (Istio: an entry with health checks is not ready until
// reported healthy).
//
// Update and the query methods are safe for concurrent use and never block
// on probes. Run owns every probe goroutine.
type Checker struct {
	log     *slog.Logger
	updates chan *config.Set // cap 1, latest wins
	changed chan struct{}    // cap 1: a status flipped since the last receive
	unit    time.Duration    // one "second" of probe timing; tests shrink it

	mu     sync.Mutex
	status map[string]bool // "namespace/name" of probed workloads → healthy

	gauge  *prometheus.GaugeVec
	probes *prometheus.CounterVec
}

// New returns a Checker. Run must be called for probes to run.
func New(opts Options) *Checker {
	c := &Checker{
		log:     cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)).With("component", "health"),
		updates: make(chan *config.Set, 1),
		changed: make(chan struct{}, 1),
		unit:    time.Second,
		status:  map[string]bool{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "trellisd_workload_healthy",
			Help: "1 when the WorkloadEntry's WorkloadGroup probe passes, 0 when it fails; absent when not probed.",
		}, []string{"namespace", "workload"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellisd_health_probes_total",
			Help: "WorkloadGroup probe attempts by result (success or failure).",
		}, []string{"result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.gauge, c.probes)
	}
	return c
}

// Update hands the checker a new config set; probes follow it once Run
// picks it up. It never blocks: an update not yet seen is replaced.
func (c *Checker) Update(set *config.Set) {
	for {
		select {
		case c.updates <- set:
			return
		default:
		}
		select {
		case <-c.updates:
		default:
		}
	}
}

// Changed is signalled (latest wins) whenever a workload's health flips or
// a probed workload goes away. Receive from it to rebuild what depends on
// health.
func (c *Checker) Changed() <-chan struct{} { return c.changed }

// Healthy reports whether workload namespace/name passes its probe;
// probed is false when no WorkloadGroup probe covers it.
func (c *Checker) Healthy(namespace, name string) (healthy, probed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	healthy, probed = c.status[namespace+"/"+name]
	return healthy || !probed, probed
}

// Apply returns reg with the endpoints of unhealthy workloads marked
// Healthy=false. reg is not modified; when nothing is unhealthy it is
// returned as is.
func (c *Checker) Apply(reg *registry.Registry) *registry.Registry {
	if reg == nil {
		return nil
	}
	c.mu.Lock()
	down := map[string]bool{}
	for k, ok := range c.status {
		if !ok {
			down[k] = true
		}
	}
	c.mu.Unlock()
	if len(down) == 0 {
		return reg
	}
	out := &registry.Registry{Services: reg.Services, Workloads: reg.Workloads, Endpoints: make(map[string][]*registry.Endpoint, len(reg.Endpoints))}
	for key, eps := range reg.Endpoints {
		if !slices.ContainsFunc(eps, func(e *registry.Endpoint) bool { return isDown(down, e) }) {
			out.Endpoints[key] = eps
			continue
		}
		cp := make([]*registry.Endpoint, len(eps))
		for i, e := range eps {
			cp[i] = e
			if isDown(down, e) {
				ec := *e
				ec.Healthy = false
				cp[i] = &ec
			}
		}
		out.Endpoints[key] = cp
	}
	return out
}

func isDown(down map[string]bool, e *registry.Endpoint) bool {
	return e.WorkloadName != "" && down[e.Namespace+"/"+e.WorkloadName]
}

// target is one probed workload.
type target struct {
	key   string // namespace/name
	group string // namespace/name of the WorkloadGroup
	addr  string
	probe *networkingv1.ReadinessProbe
}

func (t target) same(o target) bool {
	return t.group == o.group && t.addr == o.addr && proto.Equal(t.probe, o.probe)
}

// Targets lists what set asks to probe: for each WorkloadGroup with a
// probe, the WorkloadEntries of its namespace whose labels (metadata and
// spec) include the group's metadata.labels, or its template labels when
// metadata has none. A group with neither selects nothing. A workload
// selected by several groups is probed by the first in (namespace, name)
// order. Exec probes are skipped (trellisd has no agent on the workload).
func targets(set *config.Set) map[string]target {
	out := map[string]target{}
	for _, r := range set.List(config.KindWorkloadGroup) {
		wg, ok := r.Spec.(*networkingv1.WorkloadGroup)
		if !ok || wg.GetProbe() == nil || wg.GetProbe().GetExec() != nil {
			continue
		}
		sel := wg.GetMetadata().GetLabels()
		if len(sel) == 0 {
			sel = wg.GetTemplate().GetLabels()
		}
		if len(sel) == 0 {
			continue
		}
		for _, we := range set.List(config.KindWorkloadEntry) {
			e, ok := we.Spec.(*networkingv1.WorkloadEntry)
			if !ok || we.Meta.Namespace != r.Meta.Namespace || e.GetAddress() == "" {
				continue
			}
			labels := maps.Clone(we.Meta.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			maps.Copy(labels, e.GetLabels())
			if !registry.LabelsMatch(sel, labels) {
				continue
			}
			key := we.Meta.Namespace + "/" + we.Meta.Name
			if _, dup := out[key]; dup {
				continue
			}
			out[key] = target{key: key, group: r.Meta.Namespace + "/" + r.Meta.Name, addr: e.GetAddress(), probe: wg.GetProbe()}
		}
	}
	return out
}

// Run probes until ctx is done, following Update. It returns nil after
// every probe goroutine has stopped.
func (c *Checker) Run(ctx context.Context) error {
	type running struct {
		t      target
		cancel context.CancelFunc
	}
	var wg sync.WaitGroup
	active := map[string]running{}
	defer func() {
		for _, r := range active {
			r.cancel()
		}
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case set := <-c.updates:
			want := targets(set)
			for key, r := range active {
				if t, ok := want[key]; ok && t.same(r.t) {
					continue
				}
				r.cancel()
				delete(active, key)
				c.forget(key)
			}
			for key, t := range want {
				if _, ok := active[key]; ok {
					continue
				}
				run, ok := newProber(t.probe, t.addr)
				if !ok {
					continue
				}
				c.set(key, false, "not probed yet")
				pctx, cancel := context.WithCancel(ctx)
				active[key] = running{t: t, cancel: cancel}
				wg.Go(func() { c.probeLoop(pctx, t, run) })
			}
		}
	}
}

// probeLoop runs one target's probe on its schedule and applies the
// success and failure thresholds.
func (c *Checker) probeLoop(ctx context.Context, t target, run prober) {
	p := t.probe
	secs := func(v, def int32) time.Duration {
		if v <= 0 {
			v = def
		}
		return time.Duration(v) * c.unit
	}
	period, timeout := secs(p.GetPeriodSeconds(), defaultPeriod), secs(p.GetTimeoutSeconds(), defaultTimeout)
	success, failure := cmp.Or(max(p.GetSuccessThreshold(), 0), defaultSuccessThreshold), cmp.Or(max(p.GetFailureThreshold(), 0), defaultFailureThreshold)

	timer := time.NewTimer(time.Duration(max(p.GetInitialDelaySeconds(), 0)) * c.unit)
	defer timer.Stop()
	healthy := false
	var oks, fails int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := run(actx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			c.probes.WithLabelValues("success").Inc()
			oks, fails = oks+1, 0
			if !healthy && oks >= success {
				healthy = true
				c.set(t.key, true, "probe passed")
			}
		} else {
			c.probes.WithLabelValues("failure").Inc()
			oks, fails = 0, fails+1
			if healthy && fails >= failure {
				healthy = false
				c.set(t.key, false, err.Error())
			}
		}
		timer.Reset(period)
	}
}

func (c *Checker) set(key string, healthy bool, why string) {
	c.mu.Lock()
	old, had := c.status[key]
	c.status[key] = healthy
	c.mu.Unlock()
	ns, name := splitKey(key)
	v := 0.0
	if healthy {
		v = 1
	}
	c.gauge.WithLabelValues(ns, name).Set(v)
	if had && old == healthy {
		return
	}
	if had || healthy {
		c.log.Info("workload health changed", "workload", key, "healthy", healthy, "reason", why)
	}
	c.notify()
}

func (c *Checker) forget(key string) {
	c.mu.Lock()
	_, had := c.status[key]
	delete(c.status, key)
	c.mu.Unlock()
	ns, name := splitKey(key)
	c.gauge.DeleteLabelValues(ns, name)
	if had {
		c.notify()
	}
}

func (c *Checker) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func splitKey(key string) (ns, name string) {
	ns, name, _ = strings.Cut(key, "/")
	return ns, name
}
