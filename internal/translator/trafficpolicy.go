package translator

import (
	"math"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// trafficPolicy is the effective DestinationRule policy of one cluster, the
// result of Istio's MergeTrafficPolicies: the top-level policy (with its
// port-level entry for the port), overridden field by field by the subset's
// policy, overridden wholesale by the subset's port-level entry. Each field
// is nil when no level sets it.
type trafficPolicy struct {
	pool    *networkingv1.ConnectionPoolSettings
	lb      *networkingv1.LoadBalancerSettings
	outlier *networkingv1.OutlierDetection
	tls     *networkingv1.ClientTLSSettings
}

// mergePolicy returns the policy of the cluster for port, subset policy
// subset (nil for the subset-less cluster) under top-level policy top.
func mergePolicy(top, subset *networkingv1.TrafficPolicy, port uint32) trafficPolicy {
	out := policyAt(top, port)
	if subset == nil {
		return out
	}
	if v := subset.GetConnectionPool(); v != nil {
		out.pool = v
	}
	if v := subset.GetLoadBalancer(); v != nil {
		out.lb = v
	}
	if v := subset.GetOutlierDetection(); v != nil {
		out.outlier = v
	}
	if v := subset.GetTls(); v != nil {
		out.tls = v
	}
	if pl := portLevel(subset, port); pl != nil {
		out = trafficPolicy{pool: pl.GetConnectionPool(), lb: pl.GetLoadBalancer(), outlier: pl.GetOutlierDetection(), tls: pl.GetTls()}
	}
	return out
}

// policyAt is one level's policy for port: its port-level entry replaces
// the level's settings wholesale (Istio: "port level policies do not
// inherit"), else the level's own settings.
func policyAt(tp *networkingv1.TrafficPolicy, port uint32) trafficPolicy {
	if pl := portLevel(tp, port); pl != nil {
		return trafficPolicy{pool: pl.GetConnectionPool(), lb: pl.GetLoadBalancer(), outlier: pl.GetOutlierDetection(), tls: pl.GetTls()}
	}
	return trafficPolicy{pool: tp.GetConnectionPool(), lb: tp.GetLoadBalancer(), outlier: tp.GetOutlierDetection(), tls: tp.GetTls()}
}

func portLevel(tp *networkingv1.TrafficPolicy, port uint32) *networkingv1.TrafficPolicy_PortTrafficPolicy {
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			return pl
		}
	}
	return nil
}

// policyFor returns the effective policy of cluster outbound|port|subset|svc
// for the proxy being translated.
func (b *builder) policyFor(svc *registry.Service, port uint32, subset string) trafficPolicy {
	dr := b.destinationRule(svc)
	if subset == "" {
		return mergePolicy(nil, dr.GetTrafficPolicy(), port)
	}
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == subset {
			return mergePolicy(dr.GetTrafficPolicy(), ss.GetTrafficPolicy(), port)
		}
	}
	return mergePolicy(nil, dr.GetTrafficPolicy(), port)
}

// applyPolicy sets the cluster fields Istio derives from a DestinationRule
// (pilot's applyTrafficPolicy). Every outbound cluster gets Istio's default
// circuit breakers and, because Trellis sends unhealthy endpoints marked
// UNHEALTHY rather than leaving them out, a healthy_panic_threshold of 0
// unless outlierDetection.minHealthPercent says otherwise (Istio does the
// same under SEND_UNHEALTHY_ENDPOINTS).
func applyPolicy(c *clusterv3.Cluster, pol trafficPolicy, svc *registry.Service, port registry.Port) {
	applyConnectionPool(c, pol.pool)
	if opts := upstreamHTTPOptions(pol.pool, port); opts != nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{nameHTTPProtocolOpt: typed(opts)}
	}
	applyLoadBalancer(c, pol.lb)
	applyOutlierDetection(c, pol.outlier)
	if ts := fileTLS(pol.tls, svc, port); ts != nil {
		c.TransportSocket = ts
	}
}

// defaultThresholds are Istio's: every limit at MaxUint32, so that Envoy's
// per-proxy defaults (1024 connections, 3 retries) never apply by surprise.
func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

// applyConnectionPool is Istio's applyConnectionPool: circuit breaker
// thresholds, connect timeout and TCP keepalive; the HTTP
// protocol options are upstreamHTTPOptions'.
func applyConnectionPool(c *clusterv3.Cluster, pool *networkingv1.ConnectionPoolSettings) {
	th := defaultThresholds()
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	if pool == nil {
		return
	}
	h, t := pool.GetHttp(), pool.GetTcp()
	if v := h.GetHttp2MaxRequests(); v > 0 {
		th.MaxRequests = wrapperspb.UInt32(uint32(v))
	}
	if v := h.GetHttp1MaxPendingRequests(); v > 0 {
		th.MaxPendingRequests = wrapperspb.UInt32(uint32(v))
	}
	if v := h.GetMaxRetries(); v > 0 {
		th.MaxRetries = wrapperspb.UInt32(uint32(v))
	}
	if v := t.GetMaxConnections(); v > 0 {
		th.MaxConnections = wrapperspb.UInt32(uint32(v))
	}
	if ct := t.GetConnectTimeout(); ct != nil {
		c.ConnectTimeout = duration(ct.AsDuration())
	}
	if ka := t.GetTcpKeepalive(); ka != nil {
		k := &corev3.TcpKeepalive{}
		if ka.GetProbes() > 0 {
			k.KeepaliveProbes = wrapperspb.UInt32(ka.GetProbes())
		}
		if d := ka.GetTime(); d != nil {
			k.KeepaliveTime = wrapperspb.UInt32(uint32(d.AsDuration().Seconds()))
		}
		if d := ka.GetInterval(); d != nil {
			k.KeepaliveInterval = wrapperspb.UInt32(uint32(d.AsDuration().Seconds()))
		}
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: k}
	}
}

// upstreamHTTPOptions is the cluster's HttpProtocolOptions: HTTP/2 for
// HTTP2 and GRPC ports, and for HTTP ports whose h2UpgradePolicy is
// UPGRADE (Istio's shouldH2Upgrade; the mesh default is DO_NOT_UPGRADE);
// common_http_protocol_options from connectionPool idleTimeout (http, else
// tcp), maxRequestsPerConnection and maxConnectionDuration. nil for non-HTTP
// ports.
func upstreamHTTPOptions(pool *networkingv1.ConnectionPoolSettings, port registry.Port) *httpv3.HttpProtocolOptions {
	if !port.Protocol.IsHTTP() {
		return nil
	}
	h, t := pool.GetHttp(), pool.GetTcp()
	common := &corev3.HttpProtocolOptions{}
	idle := h.GetIdleTimeout()
	if idle == nil {
		idle = t.GetIdleTimeout()
	}
	if idle != nil {
		common.IdleTimeout = duration(idle.AsDuration())
	}
	if v := h.GetMaxRequestsPerConnection(); v > 0 {
		common.MaxRequestsPerConnection = wrapperspb.UInt32(uint32(v))
	}
	if d := t.GetMaxConnectionDuration(); d != nil {
		common.MaxConnectionDuration = duration(d.AsDuration())
	}
	hasCommon := common.IdleTimeout != nil || common.MaxRequestsPerConnection != nil || common.MaxConnectionDuration != nil
	h2 := port.Protocol.IsHTTP2() ||
		h.GetH2UpgradePolicy() == networkingv1.ConnectionPoolSettings_HTTPSettings_UPGRADE
	if !h2 && !hasCommon {
		return nil
	}
	opts := &httpv3.HttpProtocolOptions{}
	if hasCommon {
		opts.CommonHttpProtocolOptions = common
	}
	if h2 {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}
	} else {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	}
	return opts
}

// Defaults Istio applies to consistent hashing and warmup.
const (
	defaultMinRingSize     = 1024
	defaultWarmupMinWeight = 10.0
	defaultWarmupAggr      = 1.0
)

// applyLoadBalancer is Istio's applyLoadBalancer for lb_policy and lb_config;
// locality settings act on the ClusterLoadAssignment (locality.go) and the
// hash key on routes (hashpolicy.go).
func applyLoadBalancer(c *clusterv3.Cluster, lb *networkingv1.LoadBalancerSettings) {
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		// Resolution NONE: Envoy requires the original destination LB.
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		return
	}
	c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	if ch := lb.GetConsistentHash(); ch != nil {
		switch {
		case ch.GetMaglev() != nil:
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			if n := ch.GetMaglev().GetTableSize(); n != 0 {
				c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(n)}}
			}
		case ch.GetRingHash() != nil:
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(n)}}
			}
		default:
			n := ch.GetMinimumRingSize() // deprecated form
			if n == 0 {
				n = defaultMinRingSize
			}
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(n)}}
		}
		return
	}
	switch lb.GetSimple() {
	case networkingv1.LoadBalancerSettings_LEAST_REQUEST, networkingv1.LoadBalancerSettings_LEAST_CONN:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
			ChoiceCount: wrapperspb.UInt32(2), // power of two choices, Envoy's default made explicit
		}}
	case networkingv1.LoadBalancerSettings_RANDOM:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case networkingv1.LoadBalancerSettings_PASSTHROUGH:
		// Istio: connect to the address the caller asked for; any
		// endpoints are dropped.
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.EdsClusterConfig, c.LoadAssignment = nil, nil
		return
	}
	if ss := slowStart(lb); ss != nil {
		switch c.LbPolicy {
		case clusterv3.Cluster_ROUND_ROBIN:
			c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: ss}}
		case clusterv3.Cluster_LEAST_REQUEST:
			c.GetLeastRequestLbConfig().SlowStartConfig = ss
		}
	}
}

// slowStart converts warmup (or the deprecated warmupDurationSecs).
func slowStart(lb *networkingv1.LoadBalancerSettings) *clusterv3.Cluster_SlowStartConfig {
	window := lb.GetWarmup().GetDuration()
	if window == nil {
		window = lb.GetWarmupDurationSecs()
	}
	if window == nil || window.AsDuration() <= 0 {
		return nil
	}
	minPct, aggr := defaultWarmupMinWeight, defaultWarmupAggr
	if v := lb.GetWarmup().GetMinimumPercent(); v != nil {
		minPct = v.GetValue()
	}
	if v := lb.GetWarmup().GetAggression(); v != nil {
		aggr = v.GetValue()
	}
	return &clusterv3.Cluster_SlowStartConfig{
		SlowStartWindow:  duration(window.AsDuration()),
		Aggression:       &corev3.RuntimeDouble{DefaultValue: aggr, RuntimeKey: "upstream.istio.aggression"},
		MinWeightPercent: &typev3.Percent{Value: minPct},
	}
}

// applyOutlierDetection is Istio's applyOutlierDetection: enforcing_* is
// 100 for every enabled detector and 0 for success rate.
func applyOutlierDetection(c *clusterv3.Cluster, od *networkingv1.OutlierDetection) {
	// Panic mode would send traffic to endpoints marked UNHEALTHY by active
	// health checks; Istio never sends those, so it never panics on them.
	c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	enforce := func(v uint32) *wrapperspb.UInt32Value {
		if v > 0 {
			return wrapperspb.UInt32(100)
		}
		return wrapperspb.UInt32(0)
	}
	if n := od.GetConsecutiveErrors(); n > 0 {
		// Deprecated consecutiveErrors counts gateway errors only
		// (istio/api#617).
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(n))
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
	}
	if e := od.GetConsecutive_5XxErrors(); e != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutive_5Xx = enforce(e.GetValue())
	}
	if e := od.GetConsecutiveGatewayErrors(); e != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutiveGatewayFailure = enforce(e.GetValue())
	}
	if d := od.GetInterval(); d != nil {
		out.Interval = duration(d.AsDuration())
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		out.BaseEjectionTime = duration(d.AsDuration())
	}
	if v := od.GetMaxEjectionPercent(); v > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(v))
	}
	if od.GetSplitExternalLocalOriginErrors() {
		out.SplitExternalLocalOriginErrors = true
		if n := od.GetConsecutiveLocalOriginFailures().GetValue(); n > 0 {
			out.ConsecutiveLocalOriginFailure = wrapperspb.UInt32(n)
			out.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(100)
		}
		out.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
	}
	c.OutlierDetection = out
	if v := od.GetMinHealthPercent(); v > 0 {
		c.CommonLbConfig.HealthyPanicThreshold.Value = float64(v)
	}
}

// SDS secret names for key material read from files (docs/xds.md, "Secrets").
const (
	sdsFileCertPrefix = "file-cert:"
	sdsFileRootPrefix = "file-root:"
	sdsAgentCluster   = "sds-grpc"
	nameUpstreamTLS   = "envoy.transport_sockets.tls"
)

// drSDSSecret is an SDS reference to name served by the proxy's own agent.
func drSDSSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: sdsAgentCluster},
			}}},
		}},
	}}
}

// fileTLS is Istio's buildUpstreamClusterTLSContext for modes DISABLE,
// SIMPLE and MUTUAL with files (credentialName is a gateway feature). The
// SNI is tls.sni, else the service's host, as Envoy's auto_sni would pick
// for a request to it. ISTIO_MUTUAL and auto mTLS belong to the security
// side (issue 4) and are not built here.
func fileTLS(tls *networkingv1.ClientTLSSettings, svc *registry.Service, port registry.Port) *corev3.TransportSocket {
	mode := tls.GetMode()
	if mode != networkingv1.ClientTLSSettings_SIMPLE && mode != networkingv1.ClientTLSSettings_MUTUAL {
		return nil
	}
	sni := tls.GetSni()
	if sni == "" && !strings.HasPrefix(svc.Hostname, "*") {
		sni = svc.Hostname
	}
	common := &tlsv3.CommonTlsContext{}
	if port.Protocol.IsHTTP2() {
		common.AlpnProtocols = []string{"h2"}
	}
	if mode == networkingv1.ClientTLSSettings_MUTUAL && tls.GetClientCertificate() != "" {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{
			drSDSSecret(sdsFileCertPrefix + tls.GetClientCertificate() + "~" + tls.GetPrivateKey()),
		}
	}
	if ca := tls.GetCaCertificates(); ca != "" && !tls.GetInsecureSkipVerify().GetValue() {
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(tls.GetSubjectAltNames())},
				ValidationContextSdsSecretConfig: drSDSSecret(sdsFileRootPrefix + ca),
			},
		}
	} else {
		// No CA (or insecureSkipVerify): Istio sends an empty validation
		// context, so the server's certificate is not verified.
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}
	}
	return &corev3.TransportSocket{
		Name:       nameUpstreamTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(&tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: sni})},
	}
}

// sanMatchers matches each name exactly: spiffe:// and other URIs as URI
// SANs, the rest as DNS SANs.
func sanMatchers(names []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, n := range names {
		t := tlsv3.SubjectAltNameMatcher_DNS
		if strings.Contains(n, "://") {
			t = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: t,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}},
		})
	}
	return out
}
