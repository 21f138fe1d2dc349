package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Options configure a Client. Zero values are documented per field.
type Options struct {
	// Server is the control plane's address, host:port. Required.
	Server string
	// Node identifies this proxy (docs/xds.md, "Node identity"). Required.
	Node *corev3.Node
	// Delta selects incremental xDS; false uses state-of-the-world.
	Delta bool
	// DialOptions are added to the gRPC dial (transport credentials come
	// here once the secure channel lands); nil dials in plain text.
	DialOptions []grpc.DialOption
	// OnConfig receives every config that compiled, in order. It is called
	// from the client's goroutine and must not block for long. Required.
	OnConfig func(*runtime.Config)
	// MaxBackoff caps reconnect backoff; 0 means 15s.
	MaxBackoff time.Duration
	// WarmingTimeout bounds how long a config waits for a route table or
	// ClusterLoadAssignment that listeners or clusters reference (Envoy's
	// initial_fetch_timeout). After it the config is published without
	// them: the listener answers 404, the cluster 503. 0 means 15s.
	WarmingTimeout time.Duration
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
}

const (
	defaultMaxBackoff = 15 * time.Second
	defaultWarming    = 15 * time.Second
	baseBackoff       = 250 * time.Millisecond
	baseNACKDelay     = 100 * time.Millisecond
)

// Client is an ADS client. Create with New, start with Run.
type Client struct {
	opts      Options
	log       *slog.Logger
	connected atomic.Bool
	running   atomic.Bool
}

// New returns a client; it does not connect until Run.
func New(opts Options) *Client {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	if opts.WarmingTimeout <= 0 {
		opts.WarmingTimeout = defaultWarming
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{opts: opts, log: log.With("component", "xdsclient", "server", opts.Server)}
}

// Run connects and follows the control plane until ctx is done, reconnecting
// with backoff. It returns nil when ctx is cancelled, and an error only for
// invalid options or a second concurrent Run. OnConfig is called from Run's
// goroutine.
func (c *Client) Run(ctx context.Context) error {
	switch {
	case c.opts.Server == "":
		return errors.New("xdsclient: Options.Server is required")
	case c.opts.Node == nil:
		return errors.New("xdsclient: Options.Node is required")
	case c.opts.OnConfig == nil:
		return errors.New("xdsclient: Options.OnConfig is required")
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xdsclient: Run called twice")
	}
	defer c.running.Store(false)

	st := newState(c.log, c.opts.WarmingTimeout)
	attempt := 0
	for {
		got, err := c.session(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			attempt = 0 // the stream worked; start the backoff over
		}
		d := c.backoff(attempt)
		attempt++
		c.log.Warn("xDS stream ended, keeping last config", "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Connected reports whether a stream is currently established.
func (c *Client) Connected() bool { return c.connected.Load() }

// backoff is jittered exponential backoff: the n-th delay is drawn from
// [d/2, d) with d = min(MaxBackoff, 250ms·2^n), so that many proxies
// restarted together do not reconnect in step.
func (c *Client) backoff(n int) time.Duration {
	d := min(baseBackoff, c.opts.MaxBackoff)
	for i := 0; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// transport is one ADS stream flavour: state-of-the-world or delta. All
// methods but recv are called from the session goroutine only.
type transport interface {
	// start opens the subscriptions, resending what the state holds.
	start(st *state) error
	// recv blocks for the next response; it runs on the receive goroutine.
	recv() (*response, error)
	ack(st *state, r *response) error
	nack(st *state, r *response, err error) error
	// subscribe sends a change of RDS or EDS names.
	subscribe(st *state, c subChange) error
}

type received struct {
	r   *response
	err error
}

// nackState throttles repeated NACKs of the same response: a
// state-of-the-world server answers a NACK by resending what it has, which
// would otherwise loop as fast as the network allows.
type nackState struct {
	version, detail string
	count           int
	due             time.Time // zero: nothing deferred
	resp            *response
	err             error
}

// session runs one stream until it breaks or ctx is done. got reports
// whether any response arrived.
func (c *Client) session(ctx context.Context, st *state) (got bool, err error) {
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, unpooled()...)
	dial = append(dial, c.opts.DialOptions...)
	conn, err := grpc.NewClient(c.opts.Server, dial...)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	var t transport
	if c.opts.Delta {
		s, err := ads.DeltaAggregatedResources(sctx)
		if err != nil {
			cancel()
			return false, fmt.Errorf("open delta stream: %w", err)
		}
		t = newDeltaTransport(s, c.opts.Node)
	} else {
		s, err := ads.StreamAggregatedResources(sctx)
		if err != nil {
			cancel()
			return false, fmt.Errorf("open stream: %w", err)
		}
		t = newSotWTransport(s, c.opts.Node)
	}

	recv := make(chan received)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by session: cancel, then wait
		defer wg.Done()
		for {
			r, err := t.recv()
			select {
			case recv <- received{r, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	if err := t.start(st); err != nil {
		return false, fmt.Errorf("send subscriptions: %w", err)
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	c.log.Info("xDS stream open", "delta", c.opts.Delta)

	nacks := map[string]*nackState{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if cfg := st.build(now); cfg != nil {
			c.log.Info("publishing config", "version", cfg.Version,
				"listeners", len(cfg.Listeners), "routes", len(cfg.Routes), "clusters", len(cfg.Clusters))
			c.opts.OnConfig(cfg)
		}
		timer.Reset(c.nextWake(st, nacks, now))
		select {
		case <-ctx.Done():
			return got, nil
		case rv := <-recv:
			if rv.err != nil {
				return got, fmt.Errorf("receive: %w", rv.err)
			}
			got = true
			if err := c.handle(st, t, nacks, rv.r); err != nil {
				return got, err
			}
		case <-timer.C:
			for typeURL, n := range nacks {
				if !n.due.IsZero() && !time.Now().Before(n.due) {
					n.due = time.Time{}
					if err := t.nack(st, n.resp, n.err); err != nil {
						return got, fmt.Errorf("send NACK: %w", err)
					}
					c.log.Debug("sent deferred NACK", "type", typeURL)
				}
			}
		}
	}
}

// handle applies one response and ACKs or NACKs it.
func (c *Client) handle(st *state, t transport, nacks map[string]*nackState, r *response) error {
	changes, err := st.apply(r, time.Now())
	if err != nil {
		n := nacks[r.typeURL]
		if n == nil {
			n = &nackState{}
			nacks[r.typeURL] = n
		}
		if n.version == r.version && n.detail == err.Error() {
			n.count++
		} else {
			n.version, n.detail, n.count = r.version, err.Error(), 0
		}
		c.log.Warn("rejecting xDS update (NACK), keeping last good config",
			"type", typeName(r.typeURL), "version", r.version, "err", err)
		if n.count > 0 {
			delay := baseNACKDelay << min(n.count-1, 16)
			n.due, n.resp, n.err = time.Now().Add(min(delay, c.opts.MaxBackoff)), r, err
			return nil
		}
		n.due = time.Time{}
		if err := t.nack(st, r, err); err != nil {
			return fmt.Errorf("send NACK: %w", err)
		}
		return nil
	}
	delete(nacks, r.typeURL)
	c.log.Debug("ACK", "type", typeName(r.typeURL), "version", r.version, "resources", len(r.items), "removed", len(r.removed))
	if err := t.ack(st, r); err != nil {
		return fmt.Errorf("send ACK: %w", err)
	}
	for _, ch := range changes {
		if err := t.subscribe(st, ch); err != nil {
			return fmt.Errorf("send subscription: %w", err)
		}
	}
	return nil
}

// nextWake is how long until the warming timeout or a deferred NACK is due.
func (c *Client) nextWake(st *state, nacks map[string]*nackState, now time.Time) time.Duration {
	wake := now.Add(time.Hour)
	if names, d := st.pending(now); len(names) > 0 && d.Before(wake) {
		wake = d
	}
	for _, n := range nacks {
		if !n.due.IsZero() && n.due.Before(wake) {
			wake = n.due
		}
	}
	return max(wake.Sub(now), 0)
}
