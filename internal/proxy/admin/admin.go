package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-mesh/trellis/internal/proxy/listener"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Default ports, as Istio's.
const (
	DefaultAdminPort  = 15000
	DefaultHealthPort = 15021
	DefaultStatsPort  = 15090
)

// Source is what the endpoints report on; *listener.Manager implements it.
// Its methods MUST be safe for concurrent use and MUST NOT block.
type Source interface {
	Current() *runtime.Config
	Ready() bool
	Statuses() []listener.Status
}

var _ Source = (*listener.Manager)(nil)

// Options configure a Server. Zero values are documented per field.
type Options struct {
	// Address to bind on; required and never unspecified (0.0.0.0, ::):
	// every workload's proxy shares the machine.
	Address netip.Addr
	// Ports; 0 means the Default* constant.
	AdminPort, HealthPort, StatsPort uint16
	// Source; required.
	Source Source
	// Gatherer serves /stats/prometheus; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
}

// Server is the three admin servers. Create with New, run with Run.
type Server struct {
	opts Options
	log  *slog.Logger
}

// New validates opts.
func New(opts Options) (*Server, error) {
	if !opts.Address.IsValid() || opts.Address.IsUnspecified() {
		return nil, fmt.Errorf("admin: address %q: want the proxy's own address, not a wildcard", opts.Address)
	}
	if opts.Source == nil {
		return nil, errors.New("admin: Source is required")
	}
	if opts.AdminPort == 0 {
		opts.AdminPort = DefaultAdminPort
	}
	if opts.HealthPort == 0 {
		opts.HealthPort = DefaultHealthPort
	}
	if opts.StatsPort == 0 {
		opts.StatsPort = DefaultStatsPort
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{opts: opts, log: log.With("component", "admin")}, nil
}

// Run binds the three servers and serves until ctx is done. It fails at
// once if any cannot be bound; otherwise it returns nil after ctx is done
// and the servers have shut down.
func (s *Server) Run(ctx context.Context) error {
	servers := []struct {
		port uint16
		h    http.Handler
	}{
		{s.opts.AdminPort, s.AdminHandler()},
		{s.opts.HealthPort, s.HealthHandler()},
		{s.opts.StatsPort, s.StatsHandler()},
	}
	var lns []net.Listener
	for _, sv := range servers {
		addr := netip.AddrPortFrom(s.opts.Address, sv.port).String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("admin: bind %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(servers))
	var hs []*http.Server
	for i, sv := range servers {
		srv := &http.Server{
			Handler:           sv.h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		hs = append(hs, srv)
		go func(ln net.Listener) { errc <- srv.Serve(ln) }(lns[i])
		s.log.Info("serving", "address", lns[i].Addr().String())
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		runErr = fmt.Errorf("admin: serve: %w", err)
		errc <- nil // keep the count of results to collect below
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range hs {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close()
		}
	}
	for range servers {
		<-errc
	}
	return runErr
}

// HealthHandler serves /healthz/ready.
func (s *Server) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/ready", s.ready)
	return mux
}

// StatsHandler serves /stats/prometheus.
func (s *Server) StatsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", s.prometheus())
	return mux
}

// AdminHandler serves the Envoy-style admin endpoints.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /config_dump", s.configDump)
	mux.HandleFunc("GET /listeners", s.listeners)
	mux.HandleFunc("GET /clusters", s.clusters)
	mux.HandleFunc("GET /ready", s.readyText)
	mux.Handle("GET /stats", s.prometheus())
	mux.Handle("GET /stats/prometheus", s.prometheus())
	// Go's profiler, as Envoy's admin offers /cpuprofiler and /heapprofiler;
	// the admin port is bound on the proxy's own address only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}

func (s *Server) prometheus() http.Handler {
	return promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "trellis-proxy admin\n  /config_dump\n  /listeners\n  /clusters\n  /ready\n  /stats\n  /stats/prometheus\n  /debug/pprof/\n")
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if !s.opts.Source.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) readyText(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.opts.Source.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "PRE_INITIALIZING")
		return
	}
	fmt.Fprintln(w, "LIVE")
}

// ConfigDump is /config_dump's body.
type ConfigDump struct {
	Version string
	Ready   bool
	Config  *runtime.Config
}

func (s *Server) configDump(w http.ResponseWriter, _ *http.Request) {
	cfg := s.opts.Source.Current()
	d := ConfigDump{Ready: s.opts.Source.Ready(), Config: cfg}
	if cfg != nil {
		d.Version = cfg.Version
	}
	writeJSON(w, d)
}

func (s *Server) listeners(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Source.Statuses()
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, st)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, l := range st {
		line := l.Name + "::" + l.Address.String()
		if !l.Bound {
			line += "::error::" + l.Error
		}
		fmt.Fprintln(w, line)
	}
}

// ClusterStatus is one cluster in /clusters?format=json.
type ClusterStatus struct {
	Name      string
	Endpoints []EndpointStatus
}

// EndpointStatus is one endpoint in /clusters?format=json.
type EndpointStatus struct {
	Address  string
	Weight   uint32
	Priority uint32
	Healthy  bool
	Locality runtime.Locality
}

func (s *Server) clusters(w http.ResponseWriter, r *http.Request) {
	cs := clusterStatuses(s.opts.Source.Current())
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, cs)
		return
	}
	// Envoy's text format: cluster::host:port::field::value.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	for _, c := range cs {
		for _, e := range c.Endpoints {
			p := c.Name + "::" + e.Address + "::"
			health := "healthy"
			if !e.Healthy {
				health = "/failed_eds_health"
			}
			b.WriteString(p + "health_flags::" + health + "\n")
			b.WriteString(p + "weight::" + strconv.FormatUint(uint64(e.Weight), 10) + "\n")
			b.WriteString(p + "priority::" + strconv.FormatUint(uint64(e.Priority), 10) + "\n")
			if e.Locality != (runtime.Locality{}) {
				b.WriteString(p + "region::" + e.Locality.Region + "\n")
				b.WriteString(p + "zone::" + e.Locality.Zone + "\n")
				b.WriteString(p + "sub_zone::" + e.Locality.SubZone + "\n")
			}
		}
	}
	_, _ = w.Write([]byte(b.String()))
}

func clusterStatuses(cfg *runtime.Config) []ClusterStatus {
	if cfg == nil {
		return []ClusterStatus{}
	}
	out := make([]ClusterStatus, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		cs := ClusterStatus{Name: c.Name, Endpoints: []EndpointStatus{}}
		for _, e := range c.Endpoints {
			cs.Endpoints = append(cs.Endpoints, EndpointStatus{
				Address: e.Address(), Weight: e.Weight, Priority: e.Priority, Healthy: e.Healthy, Locality: e.Locality,
			})
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "admin: encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
