package httpproxy

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// faultFilter is envoy.filters.http.fault. A route's override replaces the
// filter's config (Istio puts its faults there).
type faultFilter struct {
	cfg    *runtime.Fault
	active atomic.Int64 // faulted requests in progress, for max_active_faults
}

func newFaultFilter(cfg *runtime.Fault) *faultFilter { return &faultFilter{cfg: cfg} }

func roll(p runtime.Percent) bool {
	return p >= runtime.PercentMillion || (p > 0 && rand.Uint32N(uint32(runtime.PercentMillion)) < uint32(p))
}

func (f *faultFilter) decode(fx *filterCtx) bool {
	cfg := f.cfg
	if o := fx.override(); o != nil && o.Fault != nil {
		cfg = o.Fault
	}
	if cfg == nil || (cfg.Delay == 0 && cfg.AbortStatus == 0 && cfg.AbortGRPC == nil) {
		return true
	}
	if len(cfg.Headers) > 0 {
		m := compileMatch(runtime.RouteMatch{PathKind: runtime.PathPrefix, CaseSensitive: true, Headers: cfg.Headers})
		if !m.matches(fx.r, fx.r.URL.EscapedPath()) {
			return true
		}
	}
	if cfg.MaxActive > 0 {
		if f.active.Add(1) > int64(cfg.MaxActive) {
			f.active.Add(-1)
			return true
		}
		defer f.active.Add(-1)
	}
	if cfg.Delay > 0 && roll(cfg.DelayPercent) {
		// A timer per request: the delay holds only this request.
		t := time.NewTimer(cfg.Delay)
		select {
		case <-t.C:
			fx.ex.addFlag("DI")
		case <-fx.r.Context().Done():
			t.Stop()
			fx.ex.addFlag("DI")
			fx.ex.addFlag("DC")
			return false
		}
	}
	if (cfg.AbortStatus != 0 || cfg.AbortGRPC != nil) && roll(cfg.AbortPercent) {
		fx.ex.addFlag("FI")
		if cfg.AbortGRPC != nil {
			hd := fx.ex.Header()
			hd[hdrContentType] = applicationGRPC
			hd["Grpc-Status"] = []string{strconv.FormatUint(uint64(*cfg.AbortGRPC), 10)}
			hd["Grpc-Message"] = []string{"fault filter abort"}
			fx.ex.WriteHeader(http.StatusOK)
			return false
		}
		fx.reply(cfg.AbortStatus, "", "fault filter abort")
		return false
	}
	return true
}
