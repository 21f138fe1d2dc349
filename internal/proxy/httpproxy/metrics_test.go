package httpproxy

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestClusterStatsSeries records common codes (the lazily allocated table),
// uncommon codes and flagged responses from several goroutines, and checks
// each lands in its own series with Istio's labels.
func TestClusterStatsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cs := m.cluster(runtime.Outbound, "c")
	if cs != m.cluster(runtime.Outbound, "c") {
		t.Fatal("cluster stats are not cached")
	}
	if cs.common.Load() != nil {
		t.Fatal("code table allocated before the first request")
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cs.observe(200, "", time.Millisecond)
			cs.observe(418, "", time.Millisecond)
			cs.observe(503, "UH", time.Millisecond)
			cs.observe(503, "", time.Millisecond)
		})
	}
	wg.Wait()
	m.cluster(runtime.Inbound, "c").observe(599, "", time.Millisecond)
	// Label values in name order: destination_cluster, reporter,
	// response_code, response_flags.
	want := map[string]float64{
		"c destination 599 -": 1,
		"c source 200 -":      4,
		"c source 418 -":      4,
		"c source 503 -":      4,
		"c source 503 UH":     4,
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if mf.GetName() == "istio_requests_total" {
				vals := make([]string, 0, 4)
				for _, l := range mt.GetLabel() {
					vals = append(vals, l.GetValue())
				}
				got[strings.Join(vals, " ")] = mt.GetCounter().GetValue()
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("istio_requests_total (-want +got):\n%s", diff)
	}
}

func TestCodeSlot(t *testing.T) {
	for i, c := range commonCodes {
		if got := codeSlot(c); got != i {
			t.Errorf("codeSlot(%d) = %d, want %d", c, got, i)
		}
	}
	for _, c := range []int{-1, 0, 100, 199, 203, 418, 599, 600, 1000} {
		if got := codeSlot(c); got != -1 {
			t.Errorf("codeSlot(%d) = %d, want -1", c, got)
		}
	}
}
