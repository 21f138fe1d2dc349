package compile

import (
	"fmt"
	"math"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

const (
	upstreamTLSType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	// socketMatchKey is the filter_metadata namespace that
	// transport_socket_matches compare (Envoy's constant).
	socketMatchKey = "envoy.transport_socket_match"
	maxRingSize    = 1 << 23 // Envoy's default maximum_ring_size
	maxMaglevTable = 5000011 // Envoy's bound on maglev_lb_config.table_size
	maxSNI         = 255     // a DNS name's length bound (UpstreamTlsContext.sni)
)

// parseLB fills rc's lb_policy and its tuning.
func parseLB(c *clusterv3.Cluster, rc *runtime.Cluster) error {
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		rc.LB = runtime.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		rc.LB = runtime.LeastRequest
	case clusterv3.Cluster_RANDOM:
		rc.LB = runtime.Random
	case clusterv3.Cluster_RING_HASH:
		rc.LB = runtime.RingHash
	case clusterv3.Cluster_MAGLEV:
		rc.LB = runtime.Maglev
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
			return fmt.Errorf("lb_policy: CLUSTER_PROVIDED needs type ORIGINAL_DST")
		}
		rc.LB = runtime.OriginalDst
	default:
		return fmt.Errorf("lb_policy: unsupported %v", c.GetLbPolicy())
	}
	cfg := &rc.LBConfig
	switch l := c.GetLbConfig().(type) {
	case nil:
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		if n := l.LeastRequestLbConfig.GetChoiceCount(); n != nil && n.GetValue() < 2 {
			return fmt.Errorf("least_request_lb_config.choice_count: %d, want at least 2", n.GetValue())
		}
		cfg.ChoiceCount = l.LeastRequestLbConfig.GetChoiceCount().GetValue()
		if l.LeastRequestLbConfig.GetActiveRequestBias() != nil {
			return fmt.Errorf("least_request_lb_config.active_request_bias: unsupported")
		}
		ss, err := parseSlowStart("least_request_lb_config.slow_start_config", l.LeastRequestLbConfig.GetSlowStartConfig())
		if err != nil {
			return err
		}
		cfg.SlowStart = ss
	case *clusterv3.Cluster_RoundRobinLbConfig_:
		ss, err := parseSlowStart("round_robin_lb_config.slow_start_config", l.RoundRobinLbConfig.GetSlowStartConfig())
		if err != nil {
			return err
		}
		cfg.SlowStart = ss
	case *clusterv3.Cluster_RingHashLbConfig_:
		rh := l.RingHashLbConfig
		if rh.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return fmt.Errorf("ring_hash_lb_config.hash_function: unsupported %v", rh.GetHashFunction())
		}
		cfg.RingMin = rh.GetMinimumRingSize().GetValue()
		cfg.RingMax = rh.GetMaximumRingSize().GetValue()
		if cfg.RingMax > maxRingSize {
			return fmt.Errorf("ring_hash_lb_config.maximum_ring_size: %d exceeds %d", cfg.RingMax, maxRingSize)
		}
		if cfg.RingMin > maxRingSize {
			return fmt.Errorf("ring_hash_lb_config.minimum_ring_size: %d exceeds %d", cfg.RingMin, maxRingSize)
		}
	case *clusterv3.Cluster_MaglevLbConfig_:
		cfg.MaglevTableSize = l.MaglevLbConfig.GetTableSize().GetValue()
		if n := cfg.MaglevTableSize; n > maxMaglevTable {
			return fmt.Errorf("maglev_lb_config.table_size: %d exceeds %d", n, maxMaglevTable)
		}
		if n := cfg.MaglevTableSize; n != 0 && !prime(n) {
			return fmt.Errorf("maglev_lb_config.table_size: %d is not a prime", n)
		}
	case *clusterv3.Cluster_OriginalDstLbConfig_:
		if o := l.OriginalDstLbConfig; o.GetUseHttpHeader() {
			cfg.OriginalDstHeader = strings.ToLower(o.GetHttpHeaderName())
			if cfg.OriginalDstHeader == "" {
				cfg.OriginalDstHeader = "x-envoy-original-dst-host"
			}
		}
		if l.OriginalDstLbConfig.GetUpstreamPortOverride() != nil {
			return fmt.Errorf("original_dst_lb_config.upstream_port_override: unsupported")
		}
	default:
		return fmt.Errorf("lb_config: unsupported %T", l)
	}
	if cl := c.GetCommonLbConfig(); cl != nil {
		switch {
		case cl.GetZoneAwareLbConfig() != nil:
			return fmt.Errorf("common_lb_config.zone_aware_lb_config: unsupported")
		case cl.GetConsistentHashingLbConfig().GetUseHostnameForHashing():
			return fmt.Errorf("common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing: unsupported")
		case cl.GetOverrideHostStatus() != nil:
			return fmt.Errorf("common_lb_config.override_host_status: unsupported")
		}
		if p := cl.GetHealthyPanicThreshold(); p != nil {
			if err := percentValue("common_lb_config.healthy_panic_threshold", p); err != nil {
				return err
			}
			cfg.PanicThreshold = p.GetValue()
			if cfg.PanicThreshold == 0 {
				cfg.PanicThreshold = runtime.PanicDisabled
			}
		}
		cfg.LocalityWeighted = cl.GetLocalityWeightedLbConfig() != nil
	}
	return nil
}

func parseSlowStart(path string, s *clusterv3.Cluster_SlowStartConfig) (*runtime.SlowStart, error) {
	if s == nil || s.GetSlowStartWindow() == nil {
		return nil, nil
	}
	if err := positiveDuration(path+".slow_start_window", s.GetSlowStartWindow()); err != nil {
		return nil, err
	}
	out := &runtime.SlowStart{Window: s.GetSlowStartWindow().AsDuration(), Aggression: 1, MinWeightPercent: 10}
	if a := s.GetAggression(); a != nil {
		out.Aggression = a.GetDefaultValue()
		if out.Aggression <= 0 || math.IsNaN(out.Aggression) || math.IsInf(out.Aggression, 0) {
			return nil, fmt.Errorf("%s.aggression: %v must be positive", path, out.Aggression)
		}
	}
	if m := s.GetMinWeightPercent(); m != nil {
		if err := percentValue(path+".min_weight_percent", m); err != nil {
			return nil, err
		}
		out.MinWeightPercent = m.GetValue()
	}
	return out, nil
}

func prime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// parseCircuitBreakers keeps the DEFAULT priority's thresholds; HIGH
// priority thresholds are accepted and ignored (no route asks for HIGH).
func parseCircuitBreakers(cb *clusterv3.CircuitBreakers) (runtime.CircuitBreakers, error) {
	var out runtime.CircuitBreakers
	if len(cb.GetPerHostThresholds()) > 0 {
		return out, fmt.Errorf("circuit_breakers.per_host_thresholds: unsupported")
	}
	for i, t := range cb.GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		if t.GetRetryBudget() != nil {
			return out, fmt.Errorf("circuit_breakers.thresholds[%d].retry_budget: unsupported", i)
		}
		u32 := func(v *wrapperspb.UInt32Value) uint32 { return v.GetValue() }
		out = runtime.CircuitBreakers{
			MaxConnections:     u32(t.GetMaxConnections()),
			MaxPendingRequests: u32(t.GetMaxPendingRequests()),
			MaxRequests:        u32(t.GetMaxRequests()),
			MaxRetries:         u32(t.GetMaxRetries()),
		}
		// An explicit 0 refuses everything in Envoy; neither Istio nor
		// trellisd emits it, and zero here means "Envoy's default".
		for name, v := range map[string]*wrapperspb.UInt32Value{
			"max_connections": t.GetMaxConnections(), "max_pending_requests": t.GetMaxPendingRequests(),
			"max_requests": t.GetMaxRequests(), "max_retries": t.GetMaxRetries(),
		} {
			if v != nil && v.GetValue() == 0 {
				return out, fmt.Errorf("circuit_breakers.thresholds[%d].%s: 0 is unsupported", i, name)
			}
		}
	}
	return out, nil
}

// parseOutlier converts outlier_detection with Envoy's defaults.
func parseOutlier(o *clusterv3.OutlierDetection) (*runtime.OutlierDetection, error) {
	if o == nil {
		return nil, nil
	}
	switch {
	case o.GetEnforcingSuccessRate() != nil && o.GetEnforcingSuccessRate().GetValue() > 0:
		return nil, fmt.Errorf("outlier_detection.enforcing_success_rate: success-rate ejection is unsupported")
	case o.GetEnforcingFailurePercentage().GetValue() > 0 || o.GetEnforcingFailurePercentageLocalOrigin().GetValue() > 0:
		return nil, fmt.Errorf("outlier_detection.enforcing_failure_percentage: failure-percentage ejection is unsupported")
	case len(o.GetMonitors()) > 0:
		return nil, fmt.Errorf("outlier_detection.monitors: unsupported")
	}
	for name, d := range map[string]*durationpb.Duration{
		"interval": o.GetInterval(), "base_ejection_time": o.GetBaseEjectionTime(), "max_ejection_time": o.GetMaxEjectionTime(),
	} {
		if err := positiveDuration("outlier_detection."+name, d); err != nil {
			return nil, err
		}
	}
	for name, v := range map[string]*wrapperspb.UInt32Value{
		"enforcing_consecutive_5xx": o.GetEnforcingConsecutive_5Xx(), "enforcing_consecutive_gateway_failure": o.GetEnforcingConsecutiveGatewayFailure(),
		"enforcing_consecutive_local_origin_failure": o.GetEnforcingConsecutiveLocalOriginFailure(), "max_ejection_percent": o.GetMaxEjectionPercent(),
	} {
		if v.GetValue() > 100 {
			return nil, fmt.Errorf("outlier_detection.%s: %d exceeds 100", name, v.GetValue())
		}
	}
	u32 := func(v *wrapperspb.UInt32Value, def uint32) uint32 {
		if v == nil {
			return def
		}
		return v.GetValue()
	}
	dur := func(d *durationpb.Duration, def time.Duration) time.Duration {
		if d == nil {
			return def
		}
		return d.AsDuration()
	}
	out := &runtime.OutlierDetection{
		Consecutive5xx:                         u32(o.GetConsecutive_5Xx(), 5),
		ConsecutiveGatewayFailure:              u32(o.GetConsecutiveGatewayFailure(), 5),
		ConsecutiveLocalOriginFailure:          u32(o.GetConsecutiveLocalOriginFailure(), 5),
		EnforcingConsecutive5xx:                u32(o.GetEnforcingConsecutive_5Xx(), 100),
		EnforcingConsecutiveGatewayFailure:     u32(o.GetEnforcingConsecutiveGatewayFailure(), 0),
		EnforcingConsecutiveLocalOriginFailure: u32(o.GetEnforcingConsecutiveLocalOriginFailure(), 100),
		SplitExternalLocalOriginErrors:         o.GetSplitExternalLocalOriginErrors(),
		Interval:                               dur(o.GetInterval(), 10*time.Second),
		BaseEjectionTime:                       dur(o.GetBaseEjectionTime(), 30*time.Second),
		MaxEjectionTime:                        dur(o.GetMaxEjectionTime(), 300*time.Second),
		MaxEjectionPercent:                     u32(o.GetMaxEjectionPercent(), 10),
	}
	return out, nil
}

// parseCommonHTTP reads common_http_protocol_options of the cluster's
// HttpProtocolOptions into the connection pool.
func parseCommonHTTP(path string, o *corev3.HttpProtocolOptions, pool *runtime.ConnectionPool) error {
	if o == nil {
		return nil
	}
	if o.GetMaxStreamDuration() != nil {
		return fmt.Errorf("%s.max_stream_duration: unsupported", path)
	}
	pool.IdleTimeout = durationOf(o.GetIdleTimeout())
	if v := o.GetMaxRequestsPerConnection(); v != nil {
		pool.MaxRequestsPerConnection = v.GetValue()
	}
	return nil
}

// parseKeepAlive reads upstream_connection_options.tcp_keepalive.
func parseKeepAlive(c *clusterv3.Cluster) *runtime.TCPKeepAlive {
	ka := c.GetUpstreamConnectionOptions().GetTcpKeepalive()
	if ka == nil {
		return nil
	}
	return &runtime.TCPKeepAlive{
		Probes:   ka.GetKeepaliveProbes().GetValue(),
		Time:     time.Duration(ka.GetKeepaliveTime().GetValue()) * time.Second,
		Interval: time.Duration(ka.GetKeepaliveInterval().GetValue()) * time.Second,
	}
}

// parseUpstreamSocket converts a cluster transport socket: TLS
// (UpstreamTlsContext) or raw_buffer (nil).
func parseUpstreamSocket(path string, ts *corev3.TransportSocket) (*runtime.UpstreamTLS, error) {
	if ts == nil {
		return nil, nil
	}
	switch ts.GetTypedConfig().GetTypeUrl() {
	case rawBufferType:
		return nil, nil
	case upstreamTLSType:
	default:
		return nil, fmt.Errorf("%s: unsupported transport socket %q", path, ts.GetName())
	}
	var ut tlsv3.UpstreamTlsContext
	if err := unmarshalTyped(ts.GetTypedConfig(), upstreamTLSType, &ut); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	return parseUpstreamTLS(path+".typed_config", &ut)
}

func parseUpstreamTLS(path string, ut *tlsv3.UpstreamTlsContext) (*runtime.UpstreamTLS, error) {
	if ut.GetAutoHostSni() || ut.GetAutoSniSanValidation() {
		return nil, fmt.Errorf("%s.auto_host_sni: unsupported", path)
	}
	if len(ut.GetSni()) > maxSNI {
		return nil, fmt.Errorf("%s.sni: %d bytes exceeds %d", path, len(ut.GetSni()), maxSNI)
	}
	cpath := path + ".common_tls_context"
	c, err := parseCommonTLS(cpath, ut.GetCommonTlsContext())
	if err != nil {
		return nil, err
	}
	switch {
	case len(c.certs) > 1:
		return nil, fmt.Errorf("%s: at most one client certificate is supported", cpath)
	case len(c.verify.CertHashes) > 0:
		return nil, fmt.Errorf("%s.validation_context.verify_certificate_hash: unsupported for upstreams", cpath)
	case len(c.verify.SPKIHashes) > 0:
		return nil, fmt.Errorf("%s.validation_context.verify_certificate_spki: unsupported for upstreams", cpath)
	case len(c.verify.SubjectAltNames) > 0 && c.verify.RootSecret == "":
		return nil, fmt.Errorf("%s: subject alt name matchers need trusted roots", cpath)
	}
	out := &runtime.UpstreamTLS{SNI: ut.GetSni(), ALPN: c.alpn, RootSecret: c.verify.RootSecret,
		SubjectAltNames: c.verify.SubjectAltNames, MinVersion: c.minVersion, MaxVersion: c.maxVersion}
	if len(c.certs) == 1 {
		out.CertSecret = c.certs[0]
	}
	return out, nil
}

// parseSocketMatches converts transport_socket_matches. Match values must
// be strings (Istio's tlsMode); other kinds are refused.
func parseSocketMatches(ms []*clusterv3.Cluster_TransportSocketMatch) ([]runtime.TransportSocketMatch, error) {
	var out []runtime.TransportSocketMatch
	for i, m := range ms {
		path := fmt.Sprintf("transport_socket_matches[%d]", i)
		if err := nonEmpty(path+".name", m.GetName()); err != nil {
			return nil, err
		}
		for k, v := range m.GetMatch().GetFields() {
			if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
				return nil, fmt.Errorf("%s.match[%q]: want a string value", path, k)
			}
		}
		// Shared like endpoints' (cluster.go): Istio's two entries,
		// tlsMode: istio and {}, are the same maps in every cluster.
		tm := runtime.TransportSocketMatch{Name: m.GetName(), Match: socketMatch(m.GetMatch(), nil)}
		tls, err := parseUpstreamSocket(path+".transport_socket", m.GetTransportSocket())
		if err != nil {
			return nil, err
		}
		tm.TLS = tls
		out = append(out, tm)
	}
	return out, nil
}

// parseHTTPOptionsFull is parseHTTPOptions plus the connection pool
// settings of common_http_protocol_options.
func parseHTTPOptionsFull(path string, o *httpv3.HttpProtocolOptions, pool *runtime.ConnectionPool) (runtime.Protocol, error) {
	if err := parseCommonHTTP(path+".common_http_protocol_options", o.GetCommonHttpProtocolOptions(), pool); err != nil {
		return 0, err
	}
	return parseHTTPOptions(path, o)
}
