package xdsserver

import (
	"fmt"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, named as istiod names them so
// that Istio dashboards work unchanged.
type metrics struct {
	proxies     prometheus.Gauge       // pilot_xds
	pushes      *prometheus.CounterVec // pilot_xds_pushes{type}
	rejects     *prometheus.CounterVec // pilot_total_xds_rejects{type}
	convergence prometheus.Histogram   // pilot_proxy_convergence_time
	services    prometheus.Gauge       // pilot_services
	skipped     prometheus.Counter     // trellis_xds_pushes_skipped_total
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds",
			Help: "Number of proxies connected to this control plane using xDS.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes",
			Help: "xDS responses sent, by type (cds, eds, lds, rds).",
		}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects",
			Help: "xDS responses rejected (NACKed) by proxies, by type.",
		}, []string{"type"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Delay in seconds between a config update and a proxy's new snapshot being set.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 3, 5, 10, 20, 30},
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_services",
			Help: "Total services known to the control plane.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trellis_xds_pushes_skipped_total",
			Help: "Proxies not recomputed after a snapshot because only endpoints they were not sent changed.",
		}),
	}
	// Export every type from the start, so dashboards see zeros, not gaps.
	for _, t := range servedTypes {
		m.pushes.WithLabelValues(typeLabel(t.url))
		m.rejects.WithLabelValues(typeLabel(t.url))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.proxies, m.pushes, m.rejects, m.convergence, m.services, m.skipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("xdsserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// typeLabel is Istio's short name for an xDS type URL.
func typeLabel(typeURL string) string {
	switch typeURL {
	case resourcev3.ClusterType:
		return "cds"
	case resourcev3.EndpointType:
		return "eds"
	case resourcev3.ListenerType:
		return "lds"
	case resourcev3.RouteType:
		return "rds"
	}
	return "other"
}
