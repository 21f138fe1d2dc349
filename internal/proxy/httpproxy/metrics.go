package httpproxy

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// DurationBuckets are Istio's istio_request_duration_milliseconds buckets.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Metrics records Istio's HTTP request metrics. The zero value is not
// usable; create with NewMetrics. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu       sync.Mutex
	clusters map[clusterKey]*clusterStats
}

type clusterKey struct {
	reporter runtime.Direction
	cluster  string
}

// NewMetrics registers istio_requests_total and
// istio_request_duration_milliseconds on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"reporter", "destination_cluster", "response_code", "response_flags"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests handled by the proxy.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request duration in milliseconds.",
			Buckets: DurationBuckets,
		}, labels),
		clusters: map[clusterKey]*clusterStats{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpproxy metrics: %w", err)
		}
	}
	return m, nil
}

// reporter is Istio's reporter label for a listener direction.
func reporter(d runtime.Direction) string {
	if d == runtime.Inbound {
		return "destination"
	}
	return "source"
}

// cluster returns the (cached) stats of one cluster for one reporter.
func (m *Metrics) cluster(dir runtime.Direction, name string) *clusterStats {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := clusterKey{dir, name}
	if cs := m.clusters[k]; cs != nil {
		return cs
	}
	cs := &clusterStats{m: m, reporter: reporter(dir), cluster: name}
	m.clusters[k] = cs
	return cs
}

// clusterStats caches the label sets of one reporter and cluster so that
// recording a request does no label hashing. Every cluster of every config
// has two (one per reporter), most never see a request, so they are small:
// the table of common plain status codes is allocated by the first request
// (issue 5: a [600] table per clusterStats was 9.6 KB of idle heap per
// cluster); other codes and flagged responses go through a sync.Map.
type clusterStats struct {
	m        *Metrics
	reporter string
	cluster  string
	common   atomic.Pointer[codeTable]
	other    sync.Map // flaggedKey → *series
}

// codeTable holds the series of the plain responses with a common status.
type codeTable [len(commonCodes)]atomic.Pointer[series]

// commonCodes are the statuses with a slot in codeTable, ascending.
var commonCodes = [...]int{200, 201, 202, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504}

// codeSlot is code's index in commonCodes, or -1.
func codeSlot(code int) int {
	lo, hi := 0, len(commonCodes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch c := commonCodes[mid]; {
		case c == code:
			return mid
		case c < code:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

type flaggedKey struct {
	code  int
	flags string
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (cs *clusterStats) series(code int, flags string) *series {
	if i := codeSlot(code); flags == "" && i >= 0 {
		t := cs.common.Load()
		if t == nil {
			t = new(codeTable)
			if !cs.common.CompareAndSwap(nil, t) {
				t = cs.common.Load()
			}
		}
		if s := t[i].Load(); s != nil {
			return s
		}
		s := cs.newSeries(code, "-")
		if !t[i].CompareAndSwap(nil, s) {
			return t[i].Load()
		}
		return s
	}
	k := flaggedKey{code, flags}
	if s, ok := cs.other.Load(k); ok {
		return s.(*series)
	}
	if flags == "" {
		flags = "-"
	}
	s, _ := cs.other.LoadOrStore(k, cs.newSeries(code, flags))
	return s.(*series)
}

func (cs *clusterStats) newSeries(code int, flags string) *series {
	lv := []string{cs.reporter, cs.cluster, strconv.Itoa(code), flags}
	return &series{
		requests: cs.m.requests.WithLabelValues(lv...),
		duration: cs.m.duration.WithLabelValues(lv...),
	}
}

// observe records one finished request. A nil receiver records nothing.
func (cs *clusterStats) observe(code int, flags string, d time.Duration) {
	if cs == nil {
		return
	}
	s := cs.series(code, flags)
	s.requests.Inc()
	s.duration.Observe(float64(d) / float64(time.Millisecond))
}
