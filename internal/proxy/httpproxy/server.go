package httpproxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
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

// NewServer returns the downstream server for h: HTTP/1.1 and HTTP/2 with
// prior knowledge (h2c) on one port, as Envoy's codec_type AUTO.
func NewServer(h http.Handler, opts ServerOptions) *http.Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = time.Hour
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s := &http.Server{
		Handler:   h,
		Protocols: &protos,
		// Bound header reads (slowloris); bodies and streams are unbounded.
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       idle,
		MaxHeaderBytes:    60 << 10, // Envoy's max_request_headers_kb default
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
