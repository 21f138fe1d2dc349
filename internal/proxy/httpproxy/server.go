package httpproxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/http1"
)

// ServerOptions configure NewServer. Zero values are documented per field.
type ServerOptions struct {
	// Logger receives the server's own errors (bad requests, TLS noise);
	// nil uses slog.Default().
	Logger *slog.Logger
	// BaseContext is the parent of every request's context; cancelling it
	// cancels all requests (the listener manager does so when a drain runs
	// out of time, which also ends upgraded connections). nil: Background.
	BaseContext context.Context
	// IdleTimeout closes idle downstream connections; 0 means one hour
	// (Envoy's http_connection_manager default).
	IdleTimeout time.Duration
}

// Downstream limits shared by NewServer and NewHTTP1Server.
const (
	// ReadHeaderTimeout bounds a request's header read (slowloris) and a
	// TLS handshake; bodies and streams are unbounded.
	ReadHeaderTimeout = time.Minute
	// maxHeaderBytes is Envoy's max_request_headers_kb default.
	maxHeaderBytes = 60 << 10
)

// NewHTTP1Server returns the downstream HTTP/1.x server: the listener
// hands it every connection that does not speak HTTP/2 (see
// http1.Server.ServeConn), with the limits NewServer applies.
// opts.BaseContext is not used: ServeConn takes the parent context.
func NewHTTP1Server(opts ServerOptions) *http1.Server {
	return http1.NewServer(http1.ServerOptions{
		Logger:            opts.Logger,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       idleTimeout(opts),
		MaxHeaderBytes:    maxHeaderBytes,
	})
}

func idleTimeout(opts ServerOptions) time.Duration {
	if opts.IdleTimeout <= 0 {
		return time.Hour
	}
	return opts.IdleTimeout
}

// NewServer returns the downstream server for h: HTTP/1.1 and HTTP/2 with
// prior knowledge (h2c) on one port, as Envoy's codec_type AUTO. The
// listener uses it for HTTP/2 only (NewHTTP1Server serves HTTP/1.x).
func NewServer(h http.Handler, opts ServerOptions) *http.Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	idle := idleTimeout(opts)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s := &http.Server{
		Handler:   h,
		Protocols: &protos,
		// Bound header reads (slowloris); bodies and streams are unbounded.
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("component", "httpproxy").Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1000,
		},
	}
	if ctx := opts.BaseContext; ctx != nil {
		s.BaseContext = func(net.Listener) context.Context { return ctx }
	}
	return s
}
