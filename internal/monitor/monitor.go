package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/xdsserver"
)

// Options say where each endpoint reads from. Every function must be safe
// for concurrent use and must not block.
type Options struct {
	// Gatherer serves /metrics. Nil means prometheus.NewRegistry() (empty).
	Gatherer prometheus.Gatherer
	// Ready backs /ready. Nil means never ready.
	Ready func() bool
	// Syncz backs /debug/syncz. Nil means an empty list.
	Syncz func() []xdsserver.ProxyStatus
	// Config backs /debug/configz: the set in force and its version. Nil, or
	// a nil set, means no config loaded yet.
	Config func() (*config.Set, uint64)
	// Logger; nil uses slog.Default(). The server adds component=monitor.
	Logger *slog.Logger
}

// Handler returns the monitoring mux.
func Handler(opts Options) http.Handler {
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "monitor")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if opts.Ready == nil || !opts.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, _ *http.Request) {
		st := []xdsserver.ProxyStatus{}
		if opts.Syncz != nil {
			st = opts.Syncz()
		}
		writeJSON(w, log, st)
	})
	mux.HandleFunc("GET /debug/configz", func(w http.ResponseWriter, _ *http.Request) {
		var (
			set *config.Set
			ver uint64
		)
		if opts.Config != nil {
			set, ver = opts.Config()
		}
		writeJSON(w, log, configz(set, ver))
	})
	return mux
}

// Resource is one entry of /debug/configz.
type Resource struct {
	Kind      string            `json:"kind"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Origin    string            `json:"origin"` // file:line
	Labels    map[string]string `json:"labels,omitempty"`
	Spec      json.RawMessage   `json:"spec"`
}

// Configz is the body of /debug/configz.
type Configz struct {
	Version   uint64     `json:"version"` // snapshot version; 0 before the first config
	Resources []Resource `json:"resources"`
}

func configz(set *config.Set, ver uint64) Configz {
	out := Configz{Version: ver, Resources: []Resource{}}
	for _, r := range set.All() {
		spec, err := protojson.Marshal(r.Spec)
		if err != nil {
			spec = nil
		}
		if len(spec) == 0 {
			spec = json.RawMessage("{}")
		}
		out.Resources = append(out.Resources, Resource{
			Kind:      r.Kind.String(),
			Namespace: r.Meta.Namespace,
			Name:      r.Meta.Name,
			Origin:    r.Origin.String(),
			Labels:    r.Meta.Labels,
			Spec:      spec,
		})
	}
	return out
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		log.Debug("write response", "err", err) // the client went away
	}
}

// slogPrinter lets promhttp report errors through slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }

// Serve serves h on lis until ctx is done, then shuts down, giving
// in-flight requests up to 5s. It returns nil on cancellation.
func Serve(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("monitor: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("monitor: shutdown: %w", err)
	}
	return nil
}
