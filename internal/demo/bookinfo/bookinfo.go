package bookinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Service names, as the apps call each other (http://NAME:9080).
const (
	ProductPage = "productpage"
	Details     = "details"
	Reviews     = "reviews"
	Ratings     = "ratings"
)

// Port is the port every Bookinfo service listens on and is called on.
const Port = 9080

// Names lists the services in call order.
func Names() []string { return []string{ProductPage, Details, Reviews, Ratings} }

// Versions lists the versions a service has: v1 to v3 for reviews, v1 for
// the others.
func Versions(name string) []string {
	if name == Reviews {
		return []string{"v1", "v2", "v3"}
	}
	return []string{"v1"}
}

// Options configures one app.
type Options struct {
	// Name is the service: ProductPage, Details, Reviews or Ratings. Required.
	Name string
	// Version selects the behaviour of reviews (v1 no stars, v2 black, v3
	// red). Empty means "v1".
	Version string
	// Proxy is the HTTP proxy every outbound call goes through, the sidecar's
	// HTTP-proxy listener (http://127.0.10.1:15080). Nil means the
	// environment's HTTP_PROXY (http.ProxyFromEnvironment).
	Proxy *url.URL
	// Transport carries outbound calls. Nil means a fresh http.Transport
	// using Proxy. When set, Proxy is ignored.
	Transport http.RoundTripper
	// Timeout bounds each outbound call. Zero means 3s, as Bookinfo's
	// productpage uses.
	Timeout time.Duration
	// Logger receives one line per failed outbound call. Nil discards.
	Logger *slog.Logger
}

// app holds what every handler needs.
type app struct {
	name, version string
	client        *http.Client
	log           *slog.Logger
}

// NewHandler returns the HTTP handler of the app o names. It fails only on
// invalid Options.
func NewHandler(o Options) (http.Handler, error) {
	if !slices.Contains(Names(), o.Name) {
		return nil, fmt.Errorf("bookinfo: unknown app %q (want one of %v)", o.Name, Names())
	}
	if o.Version == "" {
		o.Version = "v1"
	}
	if !slices.Contains(Versions(o.Name), o.Version) {
		return nil, fmt.Errorf("bookinfo: %s has no version %q (want one of %v)", o.Name, o.Version, Versions(o.Name))
	}
	rt := o.Transport
	if rt == nil {
		proxy := http.ProxyFromEnvironment
		if o.Proxy != nil {
			proxy = http.ProxyURL(o.Proxy)
		}
		rt = &http.Transport{Proxy: proxy, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &app{
		name:    o.Name,
		version: o.Version,
		client:  &http.Client{Transport: rt, Timeout: timeout},
		log:     log.With("component", "bookinfo", "app", o.Name+"-"+o.Version),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.health)
	switch o.Name {
	case ProductPage:
		a.productPageRoutes(mux)
	case Details:
		mux.HandleFunc("GET /details/{id}", a.details)
	case Reviews:
		mux.HandleFunc("GET /reviews/{id}", a.reviews)
	case Ratings:
		mux.HandleFunc("GET /ratings/{id}", a.ratings)
	}
	return mux, nil
}

// Serve answers on lis with h until ctx is done, then shuts down gracefully
// (bounded by 5s) and returns nil. It closes lis.
func Serve(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bookinfo: serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("bookinfo: shutdown %s: %w", lis.Addr(), err)
	}
	return nil
}

func (a *app) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": a.name + " is healthy"})
}
