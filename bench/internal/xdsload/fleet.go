package xdsload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
)

// Options configure a Fleet.
type Options struct {
	// Server is the control plane's xDS address, host:port. Required.
	Server string
	// Nodes are the node ids, one simulated proxy each. Required.
	Nodes []string
	// Delta selects incremental ADS; false is state of the world.
	Delta bool
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
}

// Fleet is a set of simulated proxies. Create with New, start with Run.
// Methods other than Run are safe to call concurrently with it.
type Fleet struct {
	opts    Options
	log     *slog.Logger
	proxies []*proxy

	bytes     atomic.Int64 // proto.Size of every response received
	responses atomic.Int64
	lastResp  atomic.Int64 // unix nanos of the latest response
	watch     atomic.Pointer[Watch]
}

// New returns a fleet; nothing connects until Run.
func New(opts Options) *Fleet {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	f := &Fleet{opts: opts, log: log.With("component", "xdsload")}
	for i, id := range opts.Nodes {
		f.proxies = append(f.proxies, &proxy{fleet: f, index: i, node: &corev3.Node{Id: id, Cluster: "bench"}})
	}
	return f
}

// Run connects every proxy and follows the control plane until ctx is done.
// A proxy whose stream fails reconnects after a second. Run returns nil when
// ctx is cancelled, or an error when a proxy cannot dial at all.
func (f *Fleet) Run(ctx context.Context) error {
	if f.opts.Server == "" || len(f.proxies) == 0 {
		return errors.New("xdsload run: Server and Nodes are required")
	}
	var wg sync.WaitGroup
	errs := make([]error, len(f.proxies))
	for i, p := range f.proxies {
		wg.Go(func() { errs[i] = p.run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Synced returns how many proxies have received every type they need.
func (f *Fleet) Synced() int {
	n := 0
	for _, p := range f.proxies {
		if p.synced.Load() {
			n++
		}
	}
	return n
}

// Bytes is the total size of responses received so far.
func (f *Fleet) Bytes() int64 { return f.bytes.Load() }

// Responses is the number of responses received so far.
func (f *Fleet) Responses() int64 { return f.responses.Load() }

// Size is the number of proxies.
func (f *Fleet) Size() int { return len(f.proxies) }

// WaitSynced waits until every proxy is synced and no response has arrived
// for quiet, or ctx ends.
func (f *Fleet) WaitSynced(ctx context.Context, quiet time.Duration) error {
	return f.waitFor(ctx, func() bool {
		return f.Synced() == len(f.proxies) && f.quietFor(quiet)
	}, func() string { return fmt.Sprintf("%d/%d proxies synced", f.Synced(), len(f.proxies)) })
}

// WaitQuiet waits until no response has arrived for quiet, or ctx ends.
func (f *Fleet) WaitQuiet(ctx context.Context, quiet time.Duration) error {
	return f.waitFor(ctx, func() bool { return f.quietFor(quiet) }, func() string { return "responses still arriving" })
}

func (f *Fleet) quietFor(d time.Duration) bool {
	return time.Since(time.Unix(0, f.lastResp.Load())) >= d
}

func (f *Fleet) waitFor(ctx context.Context, cond func() bool, state func() string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("xdsload wait: %w: %s", ctx.Err(), state())
		case <-tick.C:
		}
	}
	return nil
}

// Watch times how long the given proxies take to ACK a response carrying
// marker. Install it just before making the change; only one Watch is active
// at a time (a new one replaces the old).
func (f *Fleet) Watch(marker []byte, proxies []int) *Watch {
	w := &Watch{marker: slices.Clone(marker), start: time.Now(), done: make(chan struct{}),
		pending: make(map[int]bool, len(proxies)), acked: make(map[int]time.Duration, len(proxies))}
	for _, p := range proxies {
		w.pending[p] = true
	}
	if len(w.pending) == 0 {
		close(w.done)
	}
	f.watch.Store(w)
	return w
}

// Watch is one timed change. Its methods are safe for concurrent use.
type Watch struct {
	marker []byte
	start  time.Time
	done   chan struct{}

	mu      sync.Mutex
	pending map[int]bool
	acked   map[int]time.Duration
	changed int // encoded size of the largest resource seen carrying the marker
}

// observe records that proxy i ACKed a response containing the marker.
func (w *Watch) observe(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pending[i] {
		return
	}
	delete(w.pending, i)
	w.acked[i] = time.Since(w.start)
	if len(w.pending) == 0 {
		close(w.done)
	}
}

// noteChanged records the encoded size of a resource carrying the marker.
func (w *Watch) noteChanged(size int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed = max(w.changed, size)
}

// ChangedBytes is the encoded size of the largest resource a watched proxy
// received carrying the marker: what changed (one ClusterLoadAssignment for
// an endpoint edit, one route table for a VirtualService edit); 0 when none
// arrived.
func (w *Watch) ChangedBytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

func (w *Watch) wants(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[i]
}

// Wait returns once every watched proxy has ACKed or ctx ends: the delays of
// those that did, and how many did not.
func (w *Watch) Wait(ctx context.Context) (delays []time.Duration, missing int) {
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.acked {
		delays = append(delays, d)
	}
	slices.Sort(delays)
	return delays, len(w.pending)
}

// proxy is one simulated sidecar.
type proxy struct {
	fleet  *Fleet
	index  int
	node   *corev3.Node
	synced atomic.Bool
}

func (p *proxy) run(ctx context.Context) error {
	conn, err := grpc.NewClient(p.fleet.opts.Server,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return fmt.Errorf("xdsload dial: %w", err)
	}
	defer conn.Close()
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	for {
		var err error
		if p.fleet.opts.Delta {
			err = p.delta(ctx, client)
		} else {
			err = p.sotw(ctx, client)
		}
		if ctx.Err() != nil {
			return nil
		}
		p.synced.Store(false)
		p.fleet.log.Debug("stream ended; reconnecting", "node", p.node.Id, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// received accounts for one response and, when a watch wants this proxy and
// the response carries the marker, returns the watch to notify after the ACK.
func (p *proxy) received(size int, resources func(yield func([]byte) bool)) *Watch {
	f := p.fleet
	f.bytes.Add(int64(size))
	f.responses.Add(1)
	f.lastResp.Store(time.Now().UnixNano())
	w := f.watch.Load()
	if w == nil || !w.wants(p.index) {
		return nil
	}
	for b := range resources {
		if bytes.Contains(b, w.marker) {
			w.noteChanged(len(b))
			return w
		}
	}
	return nil
}

// state tracks what a proxy has and wants, shared by both protocols.
type state struct {
	got        map[string]bool // type URLs received at least once
	edsNames   []string        // sorted
	routeNames []string        // sorted
}

func (s *state) synced() bool {
	if !s.got[resourcev3.ClusterType] || !s.got[resourcev3.ListenerType] {
		return false
	}
	if len(s.edsNames) > 0 && !s.got[resourcev3.EndpointType] {
		return false
	}
	if len(s.routeNames) > 0 && !s.got[resourcev3.RouteType] {
		return false
	}
	return true
}

// edsName returns the EDS service name of an EDS cluster, or "".
func edsName(a *anypb.Any) string {
	var c clusterv3.Cluster
	if err := a.UnmarshalTo(&c); err != nil {
		return ""
	}
	if c.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// routeNames returns the RDS route names a listener references.
func routeNames(a *anypb.Any) []string {
	var l listenerv3.Listener
	if err := a.UnmarshalTo(&l); err != nil {
		return nil
	}
	var out []string
	add := func(tc *anypb.Any) {
		var h hcmv3.HttpConnectionManager
		if tc == nil || tc.UnmarshalTo(&h) != nil {
			return
		}
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			out = append(out, n)
		}
	}
	add(l.GetApiListener().GetApiListener())
	for _, fc := range l.GetFilterChains() {
		for _, flt := range fc.GetFilters() {
			add(flt.GetTypedConfig())
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
