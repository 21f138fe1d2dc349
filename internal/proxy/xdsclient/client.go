package xdsclient

import (
	"context"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"

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
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
}

// Client is an ADS client. Create with New, start with Run.
type Client struct {
	opts Options
}

// New returns a client; it does not connect until Run.
func New(opts Options) *Client { return &Client{opts: opts} }

// Run connects and follows the control plane until ctx is done, reconnecting
// with backoff. It returns nil when ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	panic("TODO: proxy control work")
}

// Connected reports whether a stream is currently established.
func (c *Client) Connected() bool { panic("TODO: proxy control work") }
