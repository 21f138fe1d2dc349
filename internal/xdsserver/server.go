package xdsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"

	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// Options configure a Server. Zero values are documented per field.
type Options struct {
	// Addr is where Run listens, host:port. Empty means 127.0.0.1:15010.
	// Serve ignores it.
	Addr string
	// Translate computes one proxy's resources. It must be pure and safe for
	// concurrent use, and must not modify a message once returned (the
	// server remembers shared messages by identity); a panic is recovered,
	// logged, and the proxy keeps its previous resources. Nil means
	// translator.TranslateCached with a cache the server owns, so that a push
	// builds each shared cluster once, not once per proxy (issue 5).
	Translate func(*snapshot.Snapshot, translator.Proxy) *translator.Resources
	// ParseNode reads a proxy's identity from its xDS node. Nil means
	// translator.ParseNode.
	ParseNode func(*corev3.Node) translator.Proxy
	// Registerer receives the server's metrics (Istio's pilot_* names). Nil
	// means the metrics are kept but not registered anywhere.
	Registerer prometheus.Registerer
	// Logger; nil uses slog.Default(). The server adds component=xds.
	Logger *slog.Logger
	// ShutdownGrace bounds how long Close waits for streams to drain before
	// cutting connections. 0 means 5s.
	ShutdownGrace time.Duration
}

// Server is the ADS server. Create with New; start with Serve or Run; stop
// with Close (or by cancelling Run's context). Update and Status are safe to
// call from any goroutine at any time, before or after Serve.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	sidecars  *sidecarCache  // shared resources, partial EDS/RDS (cache.go)
	proxyless proxylessCache // go-control-plane's, non-ADS mode: gRPC asks for some names only
	grpc      *grpc.Server

	ctx    context.Context // cancelled by Close; ends streams and the push loop
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: a pending "recompute everything"
	shared *interner     // identical resources, shared between proxies
	// firstSlots bounds the first computations of new nodes, which run on
	// their streams' goroutines, to one per CPU, as pushAll's workers:
	// 1000 proxies connecting at once translated 1000 nodes at once, each
	// building its own cluster map (issue 5: ~300 MB of trellisd's heap
	// at the initial-sync peak, 0.3 MB per proxy of RSS after it), no
	// sooner than one at a time per CPU would.
	firstSlots chan struct{}

	// incremental: Translate is the built-in translator, whose inputs
	// change.go knows, so nodes an endpoint-only change cannot affect are
	// skipped. A custom Translate may read anything: every node recomputes.
	incremental bool
	diffs       differ
	tcache      *translator.Cache // the built-in translator's; nil with a custom Translate
	patches     patchMemo
	hostLists   hostLists // outbound hosts shared between nodes (change.go)
	partial     int       // passes since the last sweep that skipped some node; push loop only

	deltaIDs atomic.Int64 // numbers the server's own delta streams (delta.go)
	sotwIDs  atomic.Int64 // and state-of-the-world ones (sotw.go)
	names    nameLists    // delta streams' subscribed names, shared (names.go)

	mu      sync.Mutex
	latest  *snapshot.Snapshot
	updated time.Time // when latest arrived, for convergence time
	nodes   map[string]*node
	streams map[streamKey]*stream

	serveOnce sync.Once
	loopDone  chan struct{} // closed when the push loop returns; nil before Serve
	closeOnce sync.Once
}

// New returns a server; it serves nothing until Serve or Run.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:15010"
	}
	incremental := opts.Translate == nil
	var c *translator.Cache
	if incremental {
		c = translator.NewCache()
		opts.Translate = func(s *snapshot.Snapshot, p translator.Proxy) *translator.Resources {
			return translator.TranslateCached(s, p, c)
		}
	}
	if opts.ParseNode == nil {
		opts.ParseNode = translator.ParseNode
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "xds")
	s := &Server{
		opts:        opts,
		incremental: incremental,
		tcache:      c,
		log:         log,
		metrics:     m,
		kick:        make(chan struct{}, 1),
		firstSlots:  make(chan struct{}, runtime.GOMAXPROCS(0)),
		shared:      newInterner(),
		nodes:       make(map[string]*node),
		streams:     make(map[streamKey]*stream),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cl := cpLogger{log}
	s.sidecars = newSidecarCache(log)
	// Proxyless gRPC clients ask for some listeners by name and expect only
	// those: go-control-plane's non-ADS cache filters to the names asked
	// for. They are few; sidecars and gateways get the sidecar cache.
	s.proxyless = proxylessCache{cachev3.NewSnapshotCache(false, cachev3.IDHash{}, cl)}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return cacheKey(r.GetNode()) },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return cacheKey(r.GetNode()) },
		Caches:        map[string]cachev3.Cache{keySidecar: s.sidecars, keyProxyless: s.proxyless.SnapshotCache},
	}
	xds := serverv3.NewServer(s.ctx, mux, callbacks{s})
	s.grpc = grpc.NewServer(
		// Large responses in buffers of their own, bounded in flight
		// (codec.go); requests in plain allocations rather than gRPC's
		// process-wide pool; each connection's write buffer returned once
		// flushed. Memory per connected proxy is a target (issue 5).
		grpc.ForceServerCodecV2(codec{inflight: newInflight(maxInflight, maxInflightWait)}),
		experimental.BufferPool(mem.NopBufferPool{}),
		grpc.SharedWriteBuffer(true),
		grpc.MaxConcurrentStreams(100000),
		grpc.MaxRecvMsgSize(4<<20),
		// Proxies ping every 30s (Istio's default) and some ping with no
		// stream open; allow both, and ping idle proxies ourselves.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s.grpc, adsServer{xds, s})
	return s, nil
}

// maxInflight bounds the bytes of large responses encoded but not yet
// written to their proxies (codec.go): 64 MiB lets 100 proxies receive
// 600 KB of clusters at once. maxInflightWait bounds how long an encoding
// waits for room.
const (
	maxInflight     = 64 << 20
	maxInflightWait = time.Second
)

// nodeCache is where a node's snapshots go.
type nodeCache interface {
	// SetSnapshot makes snap the node's current snapshot and answers its
	// open watches.
	SetSnapshot(ctx context.Context, id string, snap *nodeSnapshot) error
	// ClearSnapshot forgets the node.
	ClearSnapshot(id string)
}

var (
	_ nodeCache = (*sidecarCache)(nil)
	_ nodeCache = proxylessCache{}
)

// proxylessCache is go-control-plane's snapshot cache as a nodeCache.
type proxylessCache struct{ cachev3.SnapshotCache }

func (c proxylessCache) SetSnapshot(ctx context.Context, id string, snap *nodeSnapshot) error {
	return c.SnapshotCache.SetSnapshot(ctx, id, snap)
}

const (
	keySidecar   = "sidecar"
	keyProxyless = "proxyless"
)

// cacheKey picks the cache for a node: proxyless gRPC clients carry Istio's
// GENERATOR: grpc metadata (docs/xds.md, "Node identity").
func cacheKey(n *corev3.Node) string {
	if n.GetMetadata().GetFields()["GENERATOR"].GetStringValue() == "grpc" {
		return keyProxyless
	}
	return keySidecar
}

// Update publishes a new snapshot. It never blocks on proxies: it records the
// snapshot (latest wins) and wakes the push loop, which coalesces bursts.
// s must not be modified afterwards.
func (s *Server) Update(snap *snapshot.Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	s.latest = snap
	s.updated = time.Now()
	s.mu.Unlock()
	n := 0
	if snap.Registry != nil {
		n = len(snap.Registry.Services)
	}
	s.metrics.services.Set(float64(n))
	select {
	case s.kick <- struct{}{}:
	default: // a recompute is already pending; it will read the latest
	}
}

// Serve accepts xDS streams on lis until Close. It returns nil after Close
// and an error if serving fails. Serve may be called once.
func (s *Server) Serve(lis net.Listener) error {
	started := false
	s.serveOnce.Do(func() {
		started = true
		s.mu.Lock()
		s.loopDone = make(chan struct{})
		s.mu.Unlock()
		go s.loop()
	})
	if !started {
		return errors.New("xdsserver: serve: already serving")
	}
	s.log.Info("xDS listening", "addr", lis.Addr().String())
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xdsserver: serve: %w", err)
	}
	return nil
}

// Run listens on Options.Addr and serves until ctx is done, then stops
// gracefully. It returns nil on cancellation.
func (s *Server) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("xdsserver: listen: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err = s.Serve(lis)
	s.Close() // waits for a Close started by the AfterFunc, if any
	return err
}

// Close ends every stream, stops the push loop and the gRPC server, waiting
// up to Options.ShutdownGrace for streams to drain. It is idempotent and
// safe to call concurrently; every caller returns once shutdown is done.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel() // stream handlers return, so GracefulStop can finish
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		t := time.NewTimer(s.opts.ShutdownGrace)
		select {
		case <-done:
		case <-t.C:
			s.grpc.Stop()
			<-done
		}
		t.Stop()
		s.mu.Lock()
		loopDone := s.loopDone
		s.mu.Unlock()
		if loopDone != nil {
			<-loopDone
		}
	})
	return nil
}

// loop recomputes every connected proxy after each Update. Bursts coalesce
// in kick's single slot; each pass reads the latest snapshot.
func (s *Server) loop() {
	defer close(s.loopDone)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
			s.pushAll()
		}
	}
}

// maxPartial bounds how many passes that skipped some node may run between
// two sweeps of the interner. Skipped nodes do not mark what they hold, so
// sweeping after such a pass only costs sharing (a later equal resource is
// interned anew while the skipped node's cache keeps the old copy), never
// correctness; not sweeping lets the table grow by what each pass changed.
const maxPartial = 32

// pushAll recomputes every known node against the latest snapshot, on one
// worker per CPU (nodes are independent; each node's computations stay
// serialised by node.mu), skipping the nodes the change cannot affect
// (compute). It returns when every worker has.
func (s *Server) pushAll() {
	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	var (
		next    atomic.Int64
		skipped atomic.Int64
		wg      sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), len(nodes)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(nodes)) && s.ctx.Err() == nil; i = next.Add(1) - 1 {
				if s.compute(nodes[i]) {
					skipped.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if s.ctx.Err() != nil {
		return
	}
	if k := skipped.Load(); k > 0 {
		s.metrics.skipped.Add(float64(k))
		if s.partial++; s.partial < maxPartial {
			return
		}
	}
	s.partial = 0
	s.shared.sweep()
}
