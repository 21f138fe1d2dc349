package runtime

import (
	"time"

	"github.com/trellis-mesh/trellis/internal/authz"
)

// Envoy's names of the HTTP and network filters the proxy implements, as
// they appear in http_filters[].name and typed_per_filter_config keys.
const (
	FilterFault       = "envoy.filters.http.fault"
	FilterCORS        = "envoy.filters.http.cors"
	FilterJWT         = "envoy.filters.http.jwt_authn"
	FilterRBAC        = "envoy.filters.http.rbac"
	FilterExtAuthz    = "envoy.filters.http.ext_authz"
	FilterRateLimit   = "envoy.filters.http.local_ratelimit"
	FilterNetworkRBAC = "envoy.filters.network.rbac"
)

// HTTPFilter is one entry of an http_connection_manager's http_filters
// other than the router (which is implicit and last). Exactly one of the
// pointer fields is set.
type HTTPFilter struct {
	// Name is the filter's instance name: the key its per-route overrides
	// use in typed_per_filter_config.
	Name string
	// Disabled filters run only on routes whose override enables them
	// (Envoy's HttpFilter.disabled).
	Disabled bool

	Fault    *Fault
	CORS     *CORSFilter
	JWT      *JWTAuthn
	RBAC     *RBACFilter
	ExtAuthz *ExtAuthz
	// RateLimit is envoy.filters.http.local_ratelimit.
	RateLimit *RateLimit
}

// FilterOverride is one typed_per_filter_config entry of a route or virtual
// host (a route's entry wins over its virtual host's). At most one of the
// pointer fields is set, matching the filter's kind.
type FilterOverride struct {
	// Disabled turns the filter off for the route (FilterConfig.disabled,
	// ExtAuthzPerRoute.disabled, an RBACPerRoute without rbac).
	Disabled bool
	// Enabled turns on a filter the chain declared Disabled
	// (FilterConfig with disabled: false).
	Enabled bool

	Fault *Fault      // replaces the filter's config
	CORS  *CORSPolicy // the route's CORS policy
	RBAC  *RBACFilter // replaces the filter's config
	// JWTRequirement names an entry of JWTAuthn.RequirementMap
	// (PerRouteConfig.requirement_name).
	JWTRequirement string
	// ExtAuthzContext is added to the check request's context_extensions.
	ExtAuthzContext map[string]string
	// RateLimit replaces the filter's config; its bucket is the route's
	// (or virtual host's) own, as in Envoy.
	RateLimit *RateLimit
}

// RateLimit is envoy.filters.http.local_ratelimit (LocalRateLimit): a token
// bucket per filter, or per route or virtual host for an override.
type RateLimit struct {
	// Bucket is the token bucket; nil (the filter's config may omit it)
	// limits nothing.
	Bucket *TokenBucket
	// Enabled is the share of requests the filter checks (consuming a
	// token) and Enforced the share of limited ones it answers; both are 0%
	// when unset, as in Envoy (filter_enabled, filter_enforced).
	Enabled, Enforced Percent
	// Status answers limited requests; 429 when unset or below 400.
	Status int
	// ResponseHeaders edit the limited response (response_headers_to_add).
	ResponseHeaders HeaderMutation
	// RequestHeaders edit limited requests that are not enforced and go
	// upstream (request_headers_to_add_when_not_enforced).
	RequestHeaders HeaderMutation
	// ResourceExhausted answers limited gRPC calls with RESOURCE_EXHAUSTED
	// instead of UNAVAILABLE (rate_limited_as_resource_exhausted).
	ResourceExhausted bool
}

// TokenBucket is envoy.type.v3.TokenBucket. The bucket starts full.
type TokenBucket struct {
	MaxTokens     uint32        // 0: every request is limited
	TokensPerFill uint32        // at least 1
	FillInterval  time.Duration // positive
}

// Percent is a fractional percentage in parts per million.
type Percent uint32

// PercentMillion is 100%.
const PercentMillion Percent = 1_000_000

// Fault is envoy.filters.http.fault (HTTPFault).
type Fault struct {
	// Delay, when non-zero, holds requests for Delay with DelayPercent.
	Delay        time.Duration
	DelayPercent Percent
	// AbortStatus (HTTP) or AbortGRPC (a gRPC status code, answered with
	// HTTP 200) aborts requests with AbortPercent; both unset: no abort.
	AbortStatus  int
	AbortGRPC    *uint32
	AbortPercent Percent
	// Headers must all match for the fault to apply (HTTPFault.headers).
	Headers []HeaderMatch
	// MaxActive bounds concurrent faulted requests; 0: unbounded.
	MaxActive uint32
}

// CORSFilter is envoy.filters.http.cors; its policies come from the routes.
type CORSFilter struct{}

// CORSPolicy is envoy.extensions.filters.http.cors.v3.CorsPolicy.
type CORSPolicy struct {
	AllowOrigins     []StringMatch // allow_origin_string_match
	AllowMethods     string        // comma separated, as configured
	AllowHeaders     string
	ExposeHeaders    string
	MaxAge           string
	AllowCredentials bool
	// ShadowOnly evaluates without enforcing (filter_enabled false,
	// shadow_enabled true): no CORS headers are added.
	ShadowOnly bool
	// AllowPrivateNetwork answers Access-Control-Allow-Private-Network.
	AllowPrivateNetwork bool
}

// JWTAuthn is envoy.filters.http.jwt_authn (JwtAuthentication).
type JWTAuthn struct {
	Providers map[string]*JWTProvider
	// Rules: the first whose Match matches the request gives its
	// Requirement; no match: nothing is required.
	Rules []JWTRule
	// RequirementMap holds requirements routes name in their overrides.
	RequirementMap      map[string]*JWTRequirement
	BypassCORSPreflight bool
}

// JWTRule is one JwtAuthentication rule.
type JWTRule struct {
	Match       RouteMatch
	Requirement *JWTRequirement // nil: no requirement
}

// JWTRequirementKind selects what a JWTRequirement asks for.
type JWTRequirementKind uint8

const (
	JWTProviderName         JWTRequirementKind = iota + 1 // Provider must verify
	JWTRequiresAny                                        // any of Children
	JWTRequiresAll                                        // all of Children
	JWTAllowMissing                                       // no token is fine; a bad one fails
	JWTAllowMissingOrFailed                               // never fails
)

// JWTRequirement is Envoy's JwtRequirement.
type JWTRequirement struct {
	Kind      JWTRequirementKind
	Provider  string   // for JWTProviderName
	Audiences []string // provider_and_audiences: replaces the provider's
	Children  []*JWTRequirement
}

// JWTProvider is Envoy's JwtProvider.
type JWTProvider struct {
	Issuer    string
	Audiences []string
	// LocalJWKS is an inline JWKS document (local_jwks), validated JSON;
	// otherwise Remote names where to fetch one.
	LocalJWKS []byte
	Remote    *JWTRemote
	// Forward keeps the token in the request sent upstream.
	Forward bool
	// Where tokens are read; all empty: Envoy's defaults (the
	// Authorization header with "Bearer " and the access_token parameter).
	FromHeaders []JWTHeader
	FromParams  []string
	FromCookies []string
	// ForwardPayloadHeader, when set, carries the base64url payload upstream.
	ForwardPayloadHeader    string
	PadForwardPayloadHeader bool
	// PayloadInMetadata is the dynamic metadata key (in namespace
	// FilterJWT) under which the verified payload is stored.
	PayloadInMetadata string
	ClaimToHeaders    []JWTClaimHeader
	ClockSkew         time.Duration // 0: 60s
}

// JWTRemote is remote_jwks.
type JWTRemote struct {
	URI           string
	Cluster       string
	Timeout       time.Duration
	CacheDuration time.Duration
}

// JWTHeader is a token location in a header.
type JWTHeader struct{ Name, ValuePrefix string }

// JWTClaimHeader copies a claim into a request header.
type JWTClaimHeader struct{ Header, Claim string }

// RBACFilter is envoy.filters.http.rbac or envoy.filters.network.rbac.
// Rules is enforced (nil: nothing is enforced); Shadow is evaluated and its
// result only recorded in dynamic metadata, each key prefixed with
// ShadowStatPrefix, as Istio's CUSTOM action relies on.
type RBACFilter struct {
	Rules            *authz.Policy
	Shadow           *authz.Policy
	RulesStatPrefix  string
	ShadowStatPrefix string
	StatPrefix       string
}

// ExtAuthz is envoy.filters.http.ext_authz. Exactly one of GRPC and HTTP
// is set.
type ExtAuthz struct {
	GRPC *ExtAuthzGRPC
	HTTP *ExtAuthzHTTP
	// FailureModeAllow lets requests through when the service fails.
	FailureModeAllow bool
	// StatusOnError answers a failed check; 0: 403.
	StatusOnError int
	// EnabledMetadata, when set, enables the filter only for requests whose
	// dynamic metadata it matches (filter_enabled_metadata).
	EnabledMetadata *authz.MetadataMatch
	// AllowedHeaders limits the request headers sent to the service
	// (allowed_headers); empty: all (gRPC) or Envoy's defaults (HTTP).
	AllowedHeaders []StringMatch
	// IncludePeerCertificate sends the client certificate in the check.
	IncludePeerCertificate bool
}

// ExtAuthzGRPC is a gRPC authorization service (envoy_grpc).
type ExtAuthzGRPC struct {
	Cluster   string
	Authority string
	Timeout   time.Duration // 0: 200ms (Envoy's default)
}

// ExtAuthzHTTP is an HTTP authorization service (http_service).
type ExtAuthzHTTP struct {
	URI        string // server_uri.uri
	Cluster    string // server_uri.cluster
	Timeout    time.Duration
	PathPrefix string
	// HeadersToAdd are set on every check request.
	HeadersToAdd []Header
	// AllowedUpstreamHeaders are copied from an OK response to the request
	// sent upstream; AllowedClientHeaders from a denial to the client
	// (empty: all but Host and Content-Length).
	AllowedUpstreamHeaders []StringMatch
	AllowedClientHeaders   []StringMatch
}

// PathNormalization is the HCM's path handling before routing and filters.
type PathNormalization struct {
	Normalize    bool // normalize_path: RFC 3986 dot segments and unreserved percent-decoding
	MergeSlashes bool // merge_slashes
	EscapedSlash EscapedSlashAction
}

// EscapedSlashAction is path_with_escaped_slashes_action.
type EscapedSlashAction uint8

const (
	EscapedSlashKeep             EscapedSlashAction = iota // KEEP_UNCHANGED (and the default)
	EscapedSlashReject                                     // 400
	EscapedSlashUnescapeRedirect                           // unescape, then redirect to the result
	EscapedSlashUnescapeForward                            // unescape and go on
)

// XFCCAction is forward_client_cert_details.
type XFCCAction uint8

const (
	XFCCSanitize          XFCCAction = iota // remove the header (Envoy's default)
	XFCCForwardOnly                         // forward unchanged only over mTLS
	XFCCAppendForward                       // append this hop over mTLS
	XFCCSanitizeSet                         // replace with this hop over mTLS
	XFCCAlwaysForwardOnly                   // forward unchanged always
)

// XFCC configures x-forwarded-client-cert.
type XFCC struct {
	Action XFCCAction
	// What of the peer certificate set_current_client_cert_details adds
	// beside the Hash, which is always present.
	Subject, URI, DNS, Cert, Chain bool
}
