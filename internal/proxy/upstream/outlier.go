package upstream

import (
	"math/rand/v2"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Outcome is how one upstream attempt ended, for outlier detection.
type Outcome struct {
	// Status is the HTTP status received; 0 when none was (a local-origin
	// failure or success, see Local).
	Status int
	// Local is a local-origin event: the connection failed, timed out or
	// was reset (LocalConnectFailure, LocalTimeout, LocalReset), or it was
	// established (LocalSuccess). LocalNone with a Status.
	Local LocalEvent
}

// LocalEvent is a local-origin result of an attempt.
type LocalEvent uint8

const (
	LocalNone LocalEvent = iota
	LocalSuccess
	LocalConnectFailure
	LocalTimeout
	LocalReset
	// LocalSuccessFinal is a connection established with nothing to
	// follow (a tcp_proxy connection: Envoy's
	// LocalOriginConnectSuccessFinal). It resets the local-origin counter
	// and, without the split, counts as a success (200).
	LocalSuccessFinal
)

// hostStat is one host's outlier record.
type hostStat struct {
	c5xx, gateway, local uint32
	ejections            uint32    // multiplier of base_ejection_time
	ejectedUntil         time.Time // zero: not ejected
	returned             time.Time // when the last ejection ended
}

// detector is consecutive-error outlier detection (Envoy's
// consecutive_5xx, consecutive_gateway_failure and
// consecutive_local_origin_failure). Its caller holds the Cluster's lock.
type detector struct {
	cfg   *runtime.OutlierDetection
	hosts map[string]*hostStat // by address
	total int                  // hosts in the cluster
}

// report records o for addr at now and says whether the host was ejected.
func (d *detector) report(addr string, o Outcome, now time.Time) bool {
	h := d.hosts[addr]
	if h == nil || !h.ejectedUntil.IsZero() {
		return false
	}
	cfg := d.cfg
	status := o.Status
	if o.Local != LocalNone {
		if cfg.SplitExternalLocalOriginErrors {
			if o.Local == LocalSuccess || o.Local == LocalSuccessFinal {
				h.local = 0
				return false
			}
			h.local++
			if cfg.ConsecutiveLocalOriginFailure > 0 && h.local >= cfg.ConsecutiveLocalOriginFailure {
				h.local = 0
				return d.maybeEject(h, cfg.EnforcingConsecutiveLocalOriginFailure, now)
			}
			return false
		}
		// Without the split, local-origin failures count as the 5xx Envoy
		// would answer: 504 for a timeout, 503 otherwise.
		switch o.Local {
		case LocalSuccess:
			return false // the HTTP status that follows decides
		case LocalSuccessFinal:
			status = 200
		case LocalTimeout:
			status = 504
		default:
			status = 503
		}
	}
	if status >= 500 {
		h.c5xx++
	} else {
		h.c5xx = 0
	}
	if status == 502 || status == 503 || status == 504 {
		h.gateway++
	} else {
		h.gateway = 0
	}
	if cfg.ConsecutiveGatewayFailure > 0 && h.gateway >= cfg.ConsecutiveGatewayFailure {
		h.gateway = 0
		if d.maybeEject(h, cfg.EnforcingConsecutiveGatewayFailure, now) {
			return true
		}
	}
	if cfg.Consecutive5xx > 0 && h.c5xx >= cfg.Consecutive5xx {
		h.c5xx = 0
		return d.maybeEject(h, cfg.EnforcingConsecutive5xx, now)
	}
	return false
}

// maybeEject ejects h when the enforcing roll and max_ejection_percent
// allow. The caller has restarted the counter that fired.
func (d *detector) maybeEject(h *hostStat, enforcing uint32, now time.Time) bool {
	if enforcing == 0 || (enforcing < 100 && rand.Uint32N(100) >= enforcing) {
		return false
	}
	ejected := 0
	for _, o := range d.hosts {
		if !o.ejectedUntil.IsZero() {
			ejected++
		}
	}
	// One host may always be ejected; more only under the cap.
	if ejected > 0 && uint32((ejected+1)*100/max(d.total, 1)) > d.cfg.MaxEjectionPercent {
		return false
	}
	// The multiplier decays by one per interval spent back in the pool.
	if !h.returned.IsZero() && d.cfg.Interval > 0 {
		decay := uint32(now.Sub(h.returned) / d.cfg.Interval)
		h.ejections -= min(h.ejections, decay)
	}
	h.ejections++
	dur := d.cfg.BaseEjectionTime * time.Duration(h.ejections)
	if limit := max(d.cfg.MaxEjectionTime, d.cfg.BaseEjectionTime); dur > limit {
		dur = limit
	}
	h.ejectedUntil = now.Add(dur)
	h.c5xx, h.gateway, h.local = 0, 0, 0
	return true
}

// expire returns hosts whose ejection has ended at now and the next time
// an ejection ends (zero: none pending).
func (d *detector) expire(now time.Time) (changed bool, next time.Time) {
	for _, h := range d.hosts {
		if h.ejectedUntil.IsZero() {
			continue
		}
		if !now.Before(h.ejectedUntil) {
			h.ejectedUntil = time.Time{}
			h.returned = now
			changed = true
			continue
		}
		if next.IsZero() || h.ejectedUntil.Before(next) {
			next = h.ejectedUntil
		}
	}
	return changed, next
}

func (d *detector) ejected() map[string]bool {
	var out map[string]bool
	for addr, h := range d.hosts {
		if !h.ejectedUntil.IsZero() {
			if out == nil {
				out = map[string]bool{}
			}
			out[addr] = true
		}
	}
	return out
}
