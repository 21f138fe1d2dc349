package identity

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
}

// newMetrics registers the agent's metrics. The expiry gauges are computed at
// scrape time from the certificate in place.
func newMetrics(reg prometheus.Registerer, expiry func() time.Time) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_agent_csr_requests_total",
			Help: "Certificate requests to the CA, by result (success, failure).",
		}, []string{"result"}),
	}
	labels := prometheus.Labels{"resource_name": DefaultName}
	// Istio's agent metric: seconds left, negative once expired.
	left := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "istio_agent_cert_expiry_seconds",
		Help:        "The time remaining, in seconds, before the certificate chain will expire. A negative value indicates the cert is expired.",
		ConstLabels: labels,
	}, func() float64 {
		t := expiry()
		if t.IsZero() {
			return 0
		}
		return time.Until(t).Seconds()
	})
	at := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "trellis_agent_cert_expiry_timestamp_seconds",
		Help:        "When the workload certificate expires, in seconds since the Unix epoch; 0 before the first certificate.",
		ConstLabels: labels,
	}, func() float64 {
		t := expiry()
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, left, at} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("identity: metrics: %w", err)
			}
		}
	}
	return m, nil
}
