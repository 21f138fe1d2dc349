package runtime

import "time"

// This file holds the upstream side of a cluster beyond endpoints: load
// balancer tuning, circuit breakers, outlier detection, connection pool
// settings, upstream TLS, and the route-level policies that act on upstreams
// (hash policies, mirrors). Field meanings are Envoy's; the compile package
// fills Envoy's defaults where a field is absent, so zero values here mean
// what each field says, not "Envoy's default".

// LBConfig tunes a cluster's load balancer (Envoy's *_lb_config and
// common_lb_config).
type LBConfig struct {
	// ChoiceCount is LEAST_REQUEST's number of random choices; 0 means 2.
	ChoiceCount uint32
	// RingMin and RingMax bound RING_HASH's ring size; 0 means 1024 and
	// 8,388,608 (Envoy's defaults).
	RingMin, RingMax uint64
	// MaglevTableSize is MAGLEV's table size, a prime; 0 means 65537.
	MaglevTableSize uint64
	// PanicThreshold is healthy_panic_threshold in percent: a priority level
	// whose share of healthy hosts falls below it routes to all its hosts,
	// outlier-ejected ones included. 0 means Envoy's default, 50;
	// PanicDisabled (any negative value) disables panic, as an explicit 0
	// does in Envoy.
	PanicThreshold float64
	// LocalityWeighted is locality_weighted_lb_config: within a priority,
	// a locality is chosen first by its LocalityWeight scaled by its health,
	// then a host within it.
	LocalityWeighted bool
	// OriginalDstHeader, for an OriginalDst cluster, names the request
	// header carrying the destination host:port (original_dst_lb_config
	// use_http_header; Envoy's x-envoy-original-dst-host by default); ""
	// uses the request's authority.
	OriginalDstHeader string
	// SlowStart, when set, ramps a new host's weight up over a window
	// (slow_start_config of round_robin_lb_config or least_request_lb_config).
	SlowStart *SlowStart
}

// PanicDisabled is LBConfig.PanicThreshold for healthy_panic_threshold 0.
const PanicDisabled = -1

// SlowStart is Envoy's slow_start_config: a host that joined less than
// Window ago gets weight × max(MinWeightPercent/100, (age/Window)^(1/Aggression)).
type SlowStart struct {
	Window           time.Duration
	Aggression       float64 // 0 means 1 (linear)
	MinWeightPercent float64 // 0 means 10
}

// CircuitBreakers are the default-priority thresholds of circuit_breakers.
// A zero field means Envoy's default: 1024 connections, pending requests and
// requests, 3 concurrent retries.
type CircuitBreakers struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
}

// ConnectionPool is how upstream connections are kept.
type ConnectionPool struct {
	// MaxRequestsPerConnection closes a connection after that many requests
	// (common_http_protocol_options.max_requests_per_connection); 0: no limit.
	MaxRequestsPerConnection uint32
	// IdleTimeout closes upstream connections idle that long
	// (common_http_protocol_options.idle_timeout); 0 means one hour, Envoy's
	// default.
	IdleTimeout time.Duration
	// KeepAlive, when set, enables TCP keep-alive probes on upstream
	// connections (upstream_connection_options.tcp_keepalive).
	KeepAlive *TCPKeepAlive
}

// TCPKeepAlive is Envoy's TcpKeepalive; zero fields use the system's values.
type TCPKeepAlive struct {
	Probes   uint32
	Time     time.Duration // idle time before the first probe
	Interval time.Duration
}

// OutlierDetection is Envoy's outlier_detection (consecutive errors only;
// success-rate and failure-percentage ejection are not implemented).
// Compile fills Envoy's defaults for absent fields.
type OutlierDetection struct {
	// Consecutive counts that eject a host; 0 disables that detector.
	Consecutive5xx                uint32
	ConsecutiveGatewayFailure     uint32
	ConsecutiveLocalOriginFailure uint32
	// Enforcing* are the percent chances that a detection ejects.
	EnforcingConsecutive5xx                uint32
	EnforcingConsecutiveGatewayFailure     uint32
	EnforcingConsecutiveLocalOriginFailure uint32
	// SplitExternalLocalOriginErrors counts connect failures, resets and
	// timeouts apart from HTTP 5xx (split_external_local_origin_errors);
	// otherwise they count as 5xx (503, or 504 for a timeout).
	SplitExternalLocalOriginErrors bool
	// Interval is how often ejections are reconsidered.
	Interval time.Duration
	// BaseEjectionTime × the number of times a host was ejected is how long
	// it stays out, capped at max(MaxEjectionTime, BaseEjectionTime).
	BaseEjectionTime time.Duration
	MaxEjectionTime  time.Duration
	// MaxEjectionPercent caps the share of hosts ejected at once; one host
	// may always be ejected, as in Envoy.
	MaxEjectionPercent uint32
}

// UpstreamTLS is an UpstreamTlsContext: the client side of TLS. Key material
// is named (SDS names, see Secrets) and resolved at handshake time.
type UpstreamTLS struct {
	SNI  string   // server name sent; "" sends none
	ALPN []string // protocols offered, in order
	// CertSecret names the client certificate; "" presents none.
	CertSecret string
	// RootSecret names the roots the server's chain is verified against;
	// "" does not verify the server (Envoy without a validation context).
	RootSecret string
	// SubjectAltNames restrict the server certificate to one with a SAN
	// matching an entry; empty accepts any verified certificate.
	SubjectAltNames []SANMatch
	// MinVersion and MaxVersion are crypto/tls version numbers; 0 means
	// TLS 1.2 and TLS 1.3 respectively.
	MinVersion, MaxVersion uint16
}

// TransportSocketMatch is one entry of transport_socket_matches: endpoints
// whose SocketMatch metadata holds every pair of Match use TLS (nil TLS:
// plain text, raw_buffer). An empty Match matches every endpoint. Clusters
// share Match maps: they MUST NOT be modified.
type TransportSocketMatch struct {
	Name  string
	Match map[string]string
	TLS   *UpstreamTLS
}

// HashKind selects what a HashPolicy hashes.
type HashKind uint8

const (
	HashHeader   HashKind = iota + 1 // a request header's value
	HashCookie                       // a cookie's value, generated when absent and CookieGenerate
	HashSourceIP                     // the downstream address (connection_properties.source_ip)
	HashQuery                        // a query parameter's value
)

// HashPolicy is one entry of a route's hash_policy. Policies are evaluated
// in order; their hashes combine, and a Terminal policy that produced a hash
// stops evaluation.
type HashPolicy struct {
	Kind HashKind
	Name string // header (lower case), cookie or query parameter name
	// CookieGenerate sets a cookie named Name when the request has none
	// (Envoy generates one when ttl is present); CookieTTL is its Max-Age,
	// 0 a session cookie. CookiePath is its Path attribute ("" for none).
	CookieGenerate bool
	CookieTTL      time.Duration
	CookiePath     string
	Terminal       bool
}

// MirrorPolicy is one request_mirror_policies entry: a fire-and-forget copy
// of the request to Cluster.
type MirrorPolicy struct {
	Cluster string
	// PerMillion is the share of requests mirrored, out of 1,000,000.
	PerMillion uint32
	// KeepHost sends the copy with the original Host; otherwise "-shadow" is
	// appended to the host (disable_shadow_host_suffix_append).
	KeepHost bool
}

// RetryBackOff is retry_back_off; zero fields mean Envoy's default (25ms
// base, 10× base maximum).
type RetryBackOff struct {
	Base, Max time.Duration
}
