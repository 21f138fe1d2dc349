package runtime

import (
	"net/netip"
	"regexp"
	"time"
)

// Config is one complete proxy configuration at a version.
type Config struct {
	Version   string
	Listeners []*Listener            // sorted by Name
	Routes    map[string]*RouteTable // by RouteConfiguration name
	Clusters  map[string]*Cluster    // by cluster name
}

// Direction is a listener's traffic direction.
type Direction uint8

const (
	Outbound Direction = iota // the local app's calls to other services
	Inbound                   // calls to the local app
)

// ListenerKind says which terminal filter a listener runs.
type ListenerKind uint8

const (
	ListenerHTTP ListenerKind = iota + 1 // http_connection_manager
	ListenerTCP                          // tcp_proxy
)

// Listener is one bound socket and what it does with accepted connections.
type Listener struct {
	Name      string
	Address   netip.AddrPort
	Direction Direction
	Kind      ListenerKind
	HTTP      *HTTPListener // set when Kind == ListenerHTTP
	TCP       *TCPListener  // set when Kind == ListenerTCP

	// FilterChains, when set, are what serves connections (see Chains);
	// Kind, HTTP and TCP then repeat the first chain's, for display.
	FilterChains []*FilterChain
	// DefaultChain serves connections no chain matches; nil closes them.
	DefaultChain *FilterChain
	// Inspect are the listener filters that peek before chain matching.
	Inspect ListenerFilters
}

// HTTPListener is an http_connection_manager.
type HTTPListener struct {
	StatPrefix string
	// RouteName names the RouteTable in Config.Routes (RDS). When the table is
	// missing every request answers 404 with response flag NR.
	RouteName string
	// AbsoluteURL accepts proxy-form requests (GET http://host:port/path), as
	// an app configured with HTTP_PROXY sends them.
	AbsoluteURL bool
	// WebSocket allows "Upgrade: websocket" requests through.
	WebSocket bool

	// Filters are the http_filters before the router, in order (filter.go).
	Filters []*HTTPFilter
	// Paths is how request paths are normalized before routing and filters.
	Paths PathNormalization
	// XFCC is how x-forwarded-client-cert is handled.
	XFCC XFCC
	// UseRemoteAddress takes the connection's peer as the client address
	// instead of the last x-forwarded-for entry (use_remote_address).
	UseRemoteAddress bool
	// NetworkRBAC is an envoy.filters.network.rbac before the
	// http_connection_manager; nil: none.
	NetworkRBAC *RBACFilter
}

// TCPListener is a tcp_proxy.
type TCPListener struct {
	StatPrefix string
	Clusters   []WeightedCluster // one entry with weight 1 for a plain cluster
	// RBAC are the envoy.filters.network.rbac filters before the
	// tcp_proxy, in chain order (Istio emits AUDIT, CUSTOM, DENY, ALLOW);
	// each must allow, else the connection is closed. Empty: none.
	RBAC []*RBACFilter
}

// RouteTable is a RouteConfiguration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost
}

// VirtualHost groups routes under the domains they serve. Domains follow
// Envoy: an exact host ("reviews", "reviews:9080"), a suffix wildcard
// ("*.example.com"), a prefix wildcard ("foo.*") or "*". Matching is
// case-insensitive; exact matches win over suffix, then prefix, then "*".
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route // first match wins
	// RequireTLS answers plain-text requests with a 301 to the same URL
	// over https (require_tls ALL or EXTERNAL_ONLY; Istio's httpsRedirect).
	RequireTLS bool
	// PerFilter are typed_per_filter_config overrides by filter name; a
	// route's own entry wins. nil: none.
	PerFilter map[string]*FilterOverride
}

// Route is one match → action rule.
type Route struct {
	Name  string
	Match RouteMatch
	// Exactly one of Forward, Redirect and Direct is set.
	Forward  *ForwardAction
	Redirect *RedirectAction
	Direct   *DirectResponse

	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation

	// PerFilter are typed_per_filter_config overrides by filter name. nil: none.
	PerFilter map[string]*FilterOverride
}

// PathMatchKind selects how RouteMatch.Path is compared.
type PathMatchKind uint8

const (
	PathPrefix PathMatchKind = iota // Path is a prefix; "/" matches everything
	PathExact
	PathRegex // Regex is set, full match as Envoy's safe_regex (RE2)
)

// RouteMatch selects requests. All conditions must hold.
type RouteMatch struct {
	PathKind      PathMatchKind
	Path          string
	Regex         *regexp.Regexp
	CaseSensitive bool // default true in Envoy; Istio's ignoreUriCase sets false
	Headers       []HeaderMatch
	Query         []QueryMatch
}

// StringMatchKind selects how a string is compared.
type StringMatchKind uint8

const (
	MatchExact StringMatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchRegex
	MatchPresent // the header is present, any value
)

// StringMatch compares one value.
type StringMatch struct {
	Kind       StringMatchKind
	Value      string
	Regex      *regexp.Regexp // for MatchRegex, anchored full match
	IgnoreCase bool
}

// HeaderMatch compares a request header ("method" and "authority" are
// ":method" and ":authority" as in Envoy).
type HeaderMatch struct {
	Name   string // lower case
	Match  StringMatch
	Invert bool
}

// QueryMatch compares a query parameter.
type QueryMatch struct {
	Name  string
	Match StringMatch
}

// WeightedCluster is one destination of a weighted split.
type WeightedCluster struct {
	Name   string
	Weight uint32
	// Headers applied when this destination is picked.
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
}

// ForwardAction proxies the request to a cluster.
type ForwardAction struct {
	Clusters      []WeightedCluster // picked by weight; one entry for a plain route
	Timeout       time.Duration     // 0: no timeout (Envoy's default of 15s is not applied; Istio disables it)
	PrefixRewrite string            // replaces the matched prefix (or the whole path of an exact match) when non-empty
	HostRewrite   string            // replaces :authority when non-empty
	Retry         *RetryPolicy      // nil: no retries; routes share equal policies (read only)
	// RegexRewrite rewrites the path (the query is kept) when non-nil;
	// at most one of PrefixRewrite and RegexRewrite is set.
	RegexRewrite *RegexRewrite
	// HashPolicy feeds consistent-hash load balancers (RING_HASH, MAGLEV);
	// see HashPolicy in upstream.go.
	HashPolicy []HashPolicy
	// Mirrors are request_mirror_policies (upstream.go).
	Mirrors []MirrorPolicy
}

// RegexRewrite is Envoy's regex_rewrite (RegexMatchAndSubstitute): every
// non-overlapping match of Pattern in the path is replaced by Template.
type RegexRewrite struct {
	Pattern *regexp.Regexp // RE2, unanchored, as Envoy's safe_regex
	// Template is the substitution in regexp.Expand syntax: Envoy's \1 is
	// ${1} here and a literal "$" is "$$".
	Template string
}

// RetryPolicy is Envoy's retry_policy.
type RetryPolicy struct {
	Attempts      uint32        // retries after the first try
	PerTryTimeout time.Duration // 0: bounded only by the route timeout
	RetryOn       []string      // Envoy's retry_on conditions: "5xx", "connect-failure", ...
	StatusCodes   []uint32      // retriable_status_codes
	BackOff       RetryBackOff  // retry_back_off; zero: 25ms base, 250ms max
	// PreviousHosts avoids hosts already tried (retry_host_predicate
	// previous_hosts), re-picking up to HostSelectionAttempts times.
	PreviousHosts         bool
	HostSelectionAttempts uint32 // host_selection_retry_max_attempts; 0 means 1
	// PreviousPriorities moves retries off priority levels already tried
	// (retry_priority previous_priorities, Istio's retryRemoteLocalities).
	PreviousPriorities bool
}

// RedirectAction answers with a redirect.
type RedirectAction struct {
	Scheme     string // empty: keep
	Host       string // empty: keep
	Port       uint32 // 0: keep
	Path       string // empty: keep
	StatusCode int    // 301 by default
}

// DirectResponse answers without contacting any upstream.
type DirectResponse struct {
	Status int
	Body   []byte
}

// HeaderMutation edits headers. Set replaces, Add appends, Remove deletes;
// they apply in the order Remove, Set, Add.
type HeaderMutation struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Header is one name/value pair.
type Header struct{ Name, Value string }

// Protocol is the protocol a cluster speaks to its endpoints.
type Protocol uint8

const (
	HTTP1         Protocol = iota // HTTP/1.1 (and plain TCP for tcp_proxy clusters)
	HTTP2                         // HTTP/2 prior knowledge (h2c), as gRPC needs
	UseDownstream                 // the protocol the request arrived on (inbound clusters)
)

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy uint8

const (
	RoundRobin LBPolicy = iota
	LeastRequest
	Random
	RingHash    // consistent hashing on a ring (ring_hash_lb_config)
	Maglev      // consistent hashing on a Maglev table (maglev_lb_config)
	OriginalDst // CLUSTER_PROVIDED / ORIGINAL_DST: the request's own destination
)

// Cluster is an upstream: a named set of endpoints and how to reach them.
type Cluster struct {
	Name           string
	Protocol       Protocol
	LB             LBPolicy
	ConnectTimeout time.Duration // 0: 10s
	Endpoints      []Endpoint    // healthy and unhealthy; the picker skips unhealthy ones
	// DNS is true when endpoint hosts are names resolved at connect time
	// (STRICT_DNS / LOGICAL_DNS).
	DNS bool

	// Upstream behaviour (see upstream.go); zero values: Envoy's defaults
	// as documented per type, no outlier detection, plain text.
	LBConfig        LBConfig
	CircuitBreakers CircuitBreakers
	Pool            ConnectionPool
	Outlier         *OutlierDetection
	TLS             *UpstreamTLS // transport_socket; nil: plain text
	// TLSMatches are transport_socket_matches, first match wins; an
	// endpoint no entry matches uses TLS.
	TLSMatches []TransportSocketMatch
}

// Endpoint is one upstream host.
type Endpoint struct {
	Host     string // IP literal, or a DNS name when the cluster resolves by DNS
	Port     uint16
	Weight   uint32 // >= 1
	Locality Locality
	Priority uint32
	Healthy  bool
	// LocalityWeight is the load_balancing_weight of the endpoint's
	// locality; 0 counts as 1.
	LocalityWeight uint32
	// SocketMatch is filter_metadata["envoy.transport_socket_match"]
	// (string values), matched by Cluster.TLSMatches; Istio's auto mTLS
	// sets tlsMode: istio on endpoints with a sidecar. Endpoints and
	// configs share these maps: they MUST NOT be modified.
	SocketMatch map[string]string
}

// Address returns host:port.
func (e Endpoint) Address() string {
	return joinHostPort(e.Host, e.Port)
}

// Locality is where an endpoint runs.
type Locality struct{ Region, Zone, SubZone string }
