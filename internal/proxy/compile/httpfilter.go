package compile

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/jwt"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Type URLs of the HTTP and network filters the proxy implements.
const (
	faultType          = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
	corsType           = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
	corsPolicyType     = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
	jwtType            = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	jwtPerRouteType    = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
	rbacType           = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	rbacPerRouteType   = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	extAuthzType       = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	extAuthzPerRouteTy = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
	filterConfigType   = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
	networkRBACType    = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// parseHTTPFilterChain reads the HCM's http_filters (router last, each
// other filter parsed into its runtime form) and the HCM settings the
// filters depend on: path normalization, XFCC and use_remote_address.
func parseHTTPFilterChain(path string, hcm *hcmv3.HttpConnectionManager, h *runtime.HTTPListener) error {
	filters := hcm.GetHttpFilters()
	router := false
	for i, f := range filters {
		fpath := fmt.Sprintf("%s.http_filters[%d]", path, i)
		if f.GetConfigDiscovery() != nil {
			return fmt.Errorf("%s.config_discovery: unsupported", fpath)
		}
		if f.GetTypedConfig().GetTypeUrl() == routerType {
			if i != len(filters)-1 {
				return fmt.Errorf("%s: router must be the last http filter", fpath)
			}
			if err := parseHTTPFilters(path+".http_filters", filters[i:]); err != nil {
				return err
			}
			router = true
			continue
		}
		if err := nonEmpty(fpath+".name", f.GetName()); err != nil {
			return err
		}
		hf, err := parseHTTPFilter(fpath, f)
		if err != nil {
			return err
		}
		if hf != nil {
			h.Filters = append(h.Filters, hf)
		}
	}
	if !router {
		return fmt.Errorf("%s.http_filters: no envoy.filters.http.router", path)
	}
	h.Paths.Normalize = hcm.GetNormalizePath().GetValue()
	h.Paths.MergeSlashes = hcm.GetMergeSlashes()
	switch a := hcm.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		h.Paths.EscapedSlash = runtime.EscapedSlashKeep
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		h.Paths.EscapedSlash = runtime.EscapedSlashReject
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		h.Paths.EscapedSlash = runtime.EscapedSlashUnescapeRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		h.Paths.EscapedSlash = runtime.EscapedSlashUnescapeForward
	default:
		return fmt.Errorf("%s.path_with_escaped_slashes_action: unsupported %v", path, a)
	}
	if hcm.GetPathNormalizationOptions() != nil {
		return fmt.Errorf("%s.path_normalization_options: unsupported", path)
	}
	switch d := hcm.GetForwardClientCertDetails(); d {
	case hcmv3.HttpConnectionManager_SANITIZE:
		h.XFCC.Action = runtime.XFCCSanitize
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		h.XFCC.Action = runtime.XFCCForwardOnly
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		h.XFCC.Action = runtime.XFCCAppendForward
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		h.XFCC.Action = runtime.XFCCSanitizeSet
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		h.XFCC.Action = runtime.XFCCAlwaysForwardOnly
	default:
		return fmt.Errorf("%s.forward_client_cert_details: unsupported %v", path, d)
	}
	if s := hcm.GetSetCurrentClientCertDetails(); s != nil {
		h.XFCC.Subject = s.GetSubject().GetValue()
		h.XFCC.URI = s.GetUri()
		h.XFCC.DNS = s.GetDns()
		h.XFCC.Cert = s.GetCert()
		h.XFCC.Chain = s.GetChain()
	}
	h.UseRemoteAddress = hcm.GetUseRemoteAddress().GetValue()
	return nil
}

// parseHTTPFilter converts one non-router http filter; nil, nil for an
// unknown optional filter, which Envoy skips.
func parseHTTPFilter(path string, f *hcmv3.HttpFilter) (*runtime.HTTPFilter, error) {
	out := &runtime.HTTPFilter{Name: f.GetName(), Disabled: f.GetDisabled()}
	tc := f.GetTypedConfig()
	var err error
	switch tc.GetTypeUrl() {
	case faultType:
		var m faultv3.HTTPFault
		if err = unmarshalTyped(tc, faultType, &m); err == nil {
			out.Fault, err = parseFault(path+".typed_config", &m)
		}
	case corsType:
		var m corsv3.Cors
		err = unmarshalTyped(tc, corsType, &m)
		out.CORS = &runtime.CORSFilter{}
	case jwtType:
		var m jwtv3.JwtAuthentication
		if err = unmarshalTyped(tc, jwtType, &m); err == nil {
			out.JWT, err = parseJWTAuthn(path+".typed_config", &m)
		}
	case rbacType:
		var m httprbacv3.RBAC
		if err = unmarshalTyped(tc, rbacType, &m); err == nil {
			out.RBAC, err = parseRBAC(path+".typed_config", m.GetRules(), m.GetShadowRules(),
				m.GetMatcher() != nil || m.GetShadowMatcher() != nil)
			if err == nil {
				out.RBAC.RulesStatPrefix = m.GetRulesStatPrefix()
				out.RBAC.ShadowStatPrefix = m.GetShadowRulesStatPrefix()
			}
		}
	case extAuthzType:
		var m extauthzv3.ExtAuthz
		if err = unmarshalTyped(tc, extAuthzType, &m); err == nil {
			out.ExtAuthz, err = parseExtAuthz(path+".typed_config", &m)
		}
	case localRateLimitType:
		var m localrlv3.LocalRateLimit
		if err = unmarshalTyped(tc, localRateLimitType, &m); err == nil {
			out.RateLimit, err = parseLocalRateLimit(path+".typed_config", &m, false)
		}
	default:
		if f.GetIsOptional() {
			return nil, nil // Envoy ignores unknown optional filters
		}
		return nil, fmt.Errorf("%s: unsupported http filter %q (%s)", path, f.GetName(), tc.GetTypeUrl())
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "typed_config") {
			return nil, fmt.Errorf("%s.%w", path, err)
		}
		return nil, err
	}
	return out, nil
}

// parseNetworkRBAC converts an envoy.filters.network.rbac.
func parseNetworkRBAC(path string, f *listenerv3.Filter) (*runtime.RBACFilter, error) {
	var m netrbacv3.RBAC
	if err := unmarshalTyped(f.GetTypedConfig(), networkRBACType, &m); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	if m.GetDelayDeny() != nil {
		return nil, fmt.Errorf("%s.typed_config.delay_deny: unsupported", path)
	}
	if m.GetEnforcementType() != netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, fmt.Errorf("%s.typed_config.enforcement_type: unsupported %v", path, m.GetEnforcementType())
	}
	out, err := parseRBAC(path+".typed_config", m.GetRules(), m.GetShadowRules(), m.GetMatcher() != nil || m.GetShadowMatcher() != nil)
	if err != nil {
		return nil, err
	}
	if err := nonEmpty(path+".typed_config.stat_prefix", m.GetStatPrefix()); err != nil {
		return nil, err
	}
	out.StatPrefix = m.GetStatPrefix()
	out.ShadowStatPrefix = m.GetShadowRulesStatPrefix()
	return out, nil
}

func parseRBAC(path string, rules, shadow *rbacv3.RBAC, matcher bool) (*runtime.RBACFilter, error) {
	if matcher {
		return nil, fmt.Errorf("%s.matcher: unsupported, use rules", path)
	}
	out := &runtime.RBACFilter{}
	for field, r := range map[string]*rbacv3.RBAC{"rules": rules, "shadow_rules": shadow} {
		for _, name := range slices.Sorted(maps.Keys(r.GetPolicies())) {
			p := r.GetPolicies()[name]
			ppath := fmt.Sprintf("%s.%s.policies[%q]", path, field, name)
			switch {
			case p == nil:
				return nil, fmt.Errorf("%s: empty", ppath)
			case len(p.GetPermissions()) == 0:
				return nil, fmt.Errorf("%s.permissions: empty", ppath)
			case len(p.GetPrincipals()) == 0:
				return nil, fmt.Errorf("%s.principals: empty", ppath)
			}
		}
	}
	var err error
	if r := rules; r != nil {
		if out.Rules, err = authz.Compile(r); err != nil {
			return nil, fmt.Errorf("%s.rules: %w", path, err)
		}
	}
	if r := shadow; r != nil {
		if out.Shadow, err = authz.Compile(r); err != nil {
			return nil, fmt.Errorf("%s.shadow_rules: %w", path, err)
		}
	}
	return out, nil
}

func parseFault(path string, m *faultv3.HTTPFault) (*runtime.Fault, error) {
	switch {
	case m.GetResponseRateLimit() != nil:
		return nil, fmt.Errorf("%s.response_rate_limit: unsupported", path)
	case len(m.GetDownstreamNodes()) > 0:
		return nil, fmt.Errorf("%s.downstream_nodes: unsupported", path)
	case m.GetUpstreamCluster() != "":
		return nil, fmt.Errorf("%s.upstream_cluster: unsupported", path)
	}
	out := &runtime.Fault{MaxActive: m.GetMaxActiveFaults().GetValue()}
	if d := m.GetDelay(); d != nil {
		if d.GetHeaderDelay() != nil {
			return nil, fmt.Errorf("%s.delay.header_delay: unsupported", path)
		}
		if d.GetFixedDelay() == nil {
			return nil, fmt.Errorf("%s.delay.fixed_delay: required", path)
		}
		if err := positiveDuration(path+".delay.fixed_delay", d.GetFixedDelay()); err != nil {
			return nil, err
		}
		if err := optFraction(path+".delay.percentage", d.GetPercentage()); err != nil {
			return nil, err
		}
		out.Delay = d.GetFixedDelay().AsDuration()
		out.DelayPercent = percent(d.GetPercentage())
	}
	if a := m.GetAbort(); a != nil {
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("%s.abort.http_status: %d out of [200, 600)", path, e.HttpStatus)
			}
			out.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			g := e.GrpcStatus
			out.AbortGRPC = &g
		default:
			return nil, fmt.Errorf("%s.abort: unsupported error type %T", path, e)
		}
		if err := optFraction(path+".abort.percentage", a.GetPercentage()); err != nil {
			return nil, err
		}
		out.AbortPercent = percent(a.GetPercentage())
	}
	for i, h := range m.GetHeaders() {
		hm, err := parseHeaderMatcher(fmt.Sprintf("%s.headers[%d]", path, i), h)
		if err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, hm)
	}
	return out, nil
}

// optFraction checks a FractionalPercent that may be unset.
func optFraction(path string, f *typev3.FractionalPercent) error {
	if f == nil {
		return nil
	}
	return fraction(path, f)
}

// percent converts a FractionalPercent; nil is 100% as Envoy's fault filter
// treats a missing percentage.
func percent(p *typev3.FractionalPercent) runtime.Percent {
	if p == nil {
		return runtime.PercentMillion
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return runtime.Percent(min(n, uint64(runtime.PercentMillion)))
}

func parseCORSPolicy(path string, m *corsv3.CorsPolicy) (*runtime.CORSPolicy, error) {
	if err := runtimeFraction(path+".filter_enabled", m.GetFilterEnabled()); err != nil {
		return nil, err
	}
	out := &runtime.CORSPolicy{
		AllowMethods:        m.GetAllowMethods(),
		AllowHeaders:        m.GetAllowHeaders(),
		ExposeHeaders:       m.GetExposeHeaders(),
		MaxAge:              m.GetMaxAge(),
		AllowCredentials:    m.GetAllowCredentials().GetValue(),
		AllowPrivateNetwork: m.GetAllowPrivateNetworkAccess().GetValue(),
	}
	for i, o := range m.GetAllowOriginStringMatch() {
		sm, err := parseStringMatch(fmt.Sprintf("%s.allow_origin_string_match[%d]", path, i), o)
		if err != nil {
			return nil, err
		}
		out.AllowOrigins = append(out.AllowOrigins, sm)
	}
	enabled := m.GetFilterEnabled() == nil || fullPercent(m.GetFilterEnabled())
	if !enabled {
		out.ShadowOnly = true
	}
	return out, nil
}

func fullPercent(p *corev3.RuntimeFractionalPercent) bool {
	return percent(p.GetDefaultValue()) == runtime.PercentMillion
}

func parseJWTAuthn(path string, m *jwtv3.JwtAuthentication) (*runtime.JWTAuthn, error) {
	if m.GetFilterStateRules() != nil {
		return nil, fmt.Errorf("%s.filter_state_rules: unsupported", path)
	}
	out := &runtime.JWTAuthn{
		Providers:           map[string]*runtime.JWTProvider{},
		BypassCORSPreflight: m.GetBypassCorsPreflight(),
	}
	for _, name := range slices.Sorted(maps.Keys(m.GetProviders())) {
		p, err := parseJWTProvider(fmt.Sprintf("%s.providers[%q]", path, name), m.GetProviders()[name])
		if err != nil {
			return nil, err
		}
		out.Providers[name] = p
	}
	if len(m.GetRequirementMap()) > 0 {
		out.RequirementMap = map[string]*runtime.JWTRequirement{}
	}
	for _, name := range slices.Sorted(maps.Keys(m.GetRequirementMap())) {
		r, err := parseJWTRequirement(fmt.Sprintf("%s.requirement_map[%q]", path, name), m.GetRequirementMap()[name], out.Providers)
		if err != nil {
			return nil, err
		}
		out.RequirementMap[name] = r
	}
	for i, rule := range m.GetRules() {
		rpath := fmt.Sprintf("%s.rules[%d]", path, i)
		match, err := parseRouteMatch(rpath+".match", rule.GetMatch())
		if err != nil {
			return nil, err
		}
		jr := runtime.JWTRule{Match: match}
		switch {
		case rule.GetRequires() != nil:
			if jr.Requirement, err = parseJWTRequirement(rpath+".requires", rule.GetRequires(), out.Providers); err != nil {
				return nil, err
			}
		case rule.GetRequirementName() != "":
			if jr.Requirement = out.RequirementMap[rule.GetRequirementName()]; jr.Requirement == nil {
				return nil, fmt.Errorf("%s.requirement_name: unknown requirement %q", rpath, rule.GetRequirementName())
			}
		}
		out.Rules = append(out.Rules, jr)
	}
	return out, nil
}

func parseJWTProvider(path string, p *jwtv3.JwtProvider) (*runtime.JWTProvider, error) {
	switch {
	case p.GetSubjects() != nil:
		return nil, fmt.Errorf("%s.subjects: unsupported", path)
	case p.GetRequireExpiration():
		return nil, fmt.Errorf("%s.require_expiration: unsupported", path)
	case p.GetMaxLifetime() != nil:
		return nil, fmt.Errorf("%s.max_lifetime: unsupported", path)
	case p.GetHeaderInMetadata() != "":
		return nil, fmt.Errorf("%s.header_in_metadata: unsupported", path)
	}
	out := &runtime.JWTProvider{
		Issuer:                  p.GetIssuer(),
		Audiences:               p.GetAudiences(),
		Forward:                 p.GetForward(),
		FromParams:              p.GetFromParams(),
		FromCookies:             p.GetFromCookies(),
		ForwardPayloadHeader:    p.GetForwardPayloadHeader(),
		PadForwardPayloadHeader: p.GetPadForwardPayloadHeader(),
		PayloadInMetadata:       p.GetPayloadInMetadata(),
		ClockSkew:               time.Duration(p.GetClockSkewSeconds()) * time.Second,
	}
	if err := headerValue(path+".forward_payload_header", p.GetForwardPayloadHeader()); err != nil {
		return nil, err
	}
	for i, h := range p.GetFromHeaders() {
		hpath := fmt.Sprintf("%s.from_headers[%d]", path, i)
		if err := headerName(hpath+".name", h.GetName()); err != nil {
			return nil, err
		}
		if err := headerValue(hpath+".value_prefix", h.GetValuePrefix()); err != nil {
			return nil, err
		}
		out.FromHeaders = append(out.FromHeaders, runtime.JWTHeader{Name: h.GetName(), ValuePrefix: h.GetValuePrefix()})
	}
	for i, c := range p.GetClaimToHeaders() {
		if len(c.GetClaimPath()) > 0 {
			return nil, fmt.Errorf("%s.claim_to_headers[%d].claim_path: unsupported, use claim_name", path, i)
		}
		if err := headerName(fmt.Sprintf("%s.claim_to_headers[%d].header_name", path, i), c.GetHeaderName()); err != nil {
			return nil, err
		}
		out.ClaimToHeaders = append(out.ClaimToHeaders, runtime.JWTClaimHeader{Header: c.GetHeaderName(), Claim: c.GetClaimName()})
	}
	switch {
	case p.GetLocalJwks() != nil:
		ds := p.GetLocalJwks()
		var b []byte
		switch {
		case ds.GetInlineString() != "":
			b = []byte(ds.GetInlineString())
		case len(ds.GetInlineBytes()) > 0:
			b = ds.GetInlineBytes()
		default:
			return nil, fmt.Errorf("%s.local_jwks: want inline_string or inline_bytes", path)
		}
		if _, err := jwt.ParseJWKS(b); err != nil {
			return nil, fmt.Errorf("%s.local_jwks: %w", path, err)
		}
		out.LocalJWKS = b
	case p.GetRemoteJwks() != nil:
		r := p.GetRemoteJwks()
		switch {
		case r.GetHttpUri().GetUri() == "":
			return nil, fmt.Errorf("%s.remote_jwks.http_uri.uri: empty", path)
		case r.GetHttpUri().GetTimeout() == nil:
			return nil, fmt.Errorf("%s.remote_jwks.http_uri.timeout: required", path)
		case r.GetHttpUri().GetTimeout().AsDuration() < 0:
			return nil, fmt.Errorf("%s.remote_jwks.http_uri.timeout: negative", path)
		case r.GetCacheDuration() != nil && r.GetCacheDuration().AsDuration() < time.Millisecond:
			return nil, fmt.Errorf("%s.remote_jwks.cache_duration: %v is below 1ms", path, r.GetCacheDuration().AsDuration())
		}
		out.Remote = &runtime.JWTRemote{
			URI:           r.GetHttpUri().GetUri(),
			Cluster:       r.GetHttpUri().GetCluster(),
			Timeout:       r.GetHttpUri().GetTimeout().AsDuration(),
			CacheDuration: r.GetCacheDuration().AsDuration(),
		}
	default:
		return nil, fmt.Errorf("%s: no jwks source", path)
	}
	return out, nil
}

func parseJWTRequirement(path string, r *jwtv3.JwtRequirement, providers map[string]*runtime.JWTProvider) (*runtime.JWTRequirement, error) {
	if r == nil {
		return nil, nil
	}
	known := func(p string) error {
		if providers[p] == nil {
			return fmt.Errorf("%s: unknown provider %q", path, p)
		}
		return nil
	}
	list := func(kind runtime.JWTRequirementKind, sub string, rs []*jwtv3.JwtRequirement) (*runtime.JWTRequirement, error) {
		if len(rs) < 2 {
			return nil, fmt.Errorf("%s.%s.requirements: %d, want at least 2", path, sub, len(rs))
		}
		out := &runtime.JWTRequirement{Kind: kind}
		for i, c := range rs {
			cr, err := parseJWTRequirement(fmt.Sprintf("%s.%s.requirements[%d]", path, sub, i), c, providers)
			if err != nil {
				return nil, err
			}
			out.Children = append(out.Children, cr)
		}
		return out, nil
	}
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		return &runtime.JWTRequirement{Kind: runtime.JWTProviderName, Provider: t.ProviderName}, known(t.ProviderName)
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		p := t.ProviderAndAudiences
		return &runtime.JWTRequirement{Kind: runtime.JWTProviderName, Provider: p.GetProviderName(), Audiences: p.GetAudiences()},
			known(p.GetProviderName())
	case *jwtv3.JwtRequirement_RequiresAny:
		return list(runtime.JWTRequiresAny, "requires_any", t.RequiresAny.GetRequirements())
	case *jwtv3.JwtRequirement_RequiresAll:
		return list(runtime.JWTRequiresAll, "requires_all", t.RequiresAll.GetRequirements())
	case *jwtv3.JwtRequirement_AllowMissing:
		return &runtime.JWTRequirement{Kind: runtime.JWTAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &runtime.JWTRequirement{Kind: runtime.JWTAllowMissingOrFailed}, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: unsupported requirement %T", path, t)
	}
}

func parseExtAuthz(path string, m *extauthzv3.ExtAuthz) (*runtime.ExtAuthz, error) {
	switch {
	case m.GetWithRequestBody() != nil:
		return nil, fmt.Errorf("%s.with_request_body: unsupported", path)
	case m.GetFilterEnabled() != nil && !fullPercent(m.GetFilterEnabled()):
		return nil, fmt.Errorf("%s.filter_enabled: only 100%% is supported", path)
	case m.GetShadowMode():
		return nil, fmt.Errorf("%s.shadow_mode: unsupported", path)
	}
	if err := runtimeFraction(path+".filter_enabled", m.GetFilterEnabled()); err != nil {
		return nil, err
	}
	if s := m.GetStatusOnError(); s != nil && (s.GetCode() == typev3.StatusCode_Empty || typev3.StatusCode_name[int32(s.GetCode())] == "") {
		return nil, fmt.Errorf("%s.status_on_error.code: unsupported %v", path, m.GetStatusOnError().GetCode())
	}
	out := &runtime.ExtAuthz{
		FailureModeAllow:       m.GetFailureModeAllow(),
		StatusOnError:          int(m.GetStatusOnError().GetCode()),
		IncludePeerCertificate: m.GetIncludePeerCertificate(),
	}
	if md := m.GetFilterEnabledMetadata(); md != nil {
		mm, err := authz.CompileMetadata(md)
		if err != nil {
			return nil, fmt.Errorf("%s.filter_enabled_%w", path, err)
		}
		out.EnabledMetadata = mm
	}
	var err error
	if out.AllowedHeaders, err = parseListString(path+".allowed_headers", m.GetAllowedHeaders()); err != nil {
		return nil, err
	}
	switch s := m.GetServices().(type) {
	case *extauthzv3.ExtAuthz_GrpcService:
		g := s.GrpcService
		eg := g.GetEnvoyGrpc()
		if eg == nil {
			return nil, fmt.Errorf("%s.grpc_service: want envoy_grpc", path)
		}
		if err := nonEmpty(path+".grpc_service.envoy_grpc.cluster_name", eg.GetClusterName()); err != nil {
			return nil, err
		}
		if err := headerValue(path+".grpc_service.envoy_grpc.authority", eg.GetAuthority()); err != nil {
			return nil, err
		}
		out.GRPC = &runtime.ExtAuthzGRPC{Cluster: eg.GetClusterName(), Authority: eg.GetAuthority(), Timeout: g.GetTimeout().AsDuration()}
	case *extauthzv3.ExtAuthz_HttpService:
		hs := s.HttpService
		h := &runtime.ExtAuthzHTTP{
			URI:        hs.GetServerUri().GetUri(),
			Cluster:    hs.GetServerUri().GetCluster(),
			Timeout:    hs.GetServerUri().GetTimeout().AsDuration(),
			PathPrefix: hs.GetPathPrefix(),
		}
		if hs.GetPathOverride() != "" {
			return nil, fmt.Errorf("%s.http_service.path_override: unsupported", path)
		}
		switch {
		case h.URI == "":
			return nil, fmt.Errorf("%s.http_service.server_uri.uri: empty", path)
		case h.Cluster == "":
			return nil, fmt.Errorf("%s.http_service.server_uri.cluster: empty", path)
		case hs.GetServerUri().GetTimeout() == nil:
			return nil, fmt.Errorf("%s.http_service.server_uri.timeout: required", path)
		case h.Timeout < 0:
			return nil, fmt.Errorf("%s.http_service.server_uri.timeout: negative", path)
		}
		req := hs.GetAuthorizationRequest()
		if req.GetAllowedHeaders() != nil {
			if out.AllowedHeaders, err = parseListString(path+".http_service.authorization_request.allowed_headers", req.GetAllowedHeaders()); err != nil {
				return nil, err
			}
		}
		for i, hv := range req.GetHeadersToAdd() {
			if err := checkHeader(fmt.Sprintf("%s.http_service.authorization_request.headers_to_add[%d]", path, i), hv); err != nil {
				return nil, err
			}
			h.HeadersToAdd = append(h.HeadersToAdd, runtime.Header{Name: hv.GetKey(), Value: hv.GetValue()})
		}
		resp := hs.GetAuthorizationResponse()
		if h.AllowedUpstreamHeaders, err = parseListString(path+".http_service.authorization_response.allowed_upstream_headers", resp.GetAllowedUpstreamHeaders()); err != nil {
			return nil, err
		}
		if h.AllowedClientHeaders, err = parseListString(path+".http_service.authorization_response.allowed_client_headers", resp.GetAllowedClientHeaders()); err != nil {
			return nil, err
		}
		out.HTTP = h
	default:
		return nil, fmt.Errorf("%s: no grpc_service or http_service", path)
	}
	return out, nil
}

func parseListString(path string, l *matcherv3.ListStringMatcher) ([]runtime.StringMatch, error) {
	if l != nil && len(l.GetPatterns()) == 0 {
		return nil, fmt.Errorf("%s.patterns: empty", path)
	}
	var out []runtime.StringMatch
	for i, p := range l.GetPatterns() {
		sm, err := parseStringMatch(fmt.Sprintf("%s.patterns[%d]", path, i), p)
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
	}
	return out, nil
}

// parsePerFilterConfig converts a route's or virtual host's
// typed_per_filter_config. Entries for filters the proxy does not
// implement are errors unless wrapped in a FilterConfig with is_optional.
func parsePerFilterConfig(path string, m map[string]*anypb.Any) (map[string]*runtime.FilterOverride, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]*runtime.FilterOverride, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		fpath := fmt.Sprintf("%s.typed_per_filter_config[%q]", path, name)
		o, err := parseFilterOverride(fpath, m[name], false)
		if err != nil {
			return nil, err
		}
		if o != nil {
			out[name] = o
		}
	}
	return out, nil
}

func parseFilterOverride(path string, a *anypb.Any, optional bool) (*runtime.FilterOverride, error) {
	o := &runtime.FilterOverride{}
	var err error
	switch a.GetTypeUrl() {
	case filterConfigType:
		var fc routev3.FilterConfig
		if err := unmarshalTyped(a, filterConfigType, &fc); err != nil {
			return nil, fmt.Errorf("%s.%w", path, err)
		}
		if fc.GetDisabled() {
			return &runtime.FilterOverride{Disabled: true}, nil
		}
		if fc.GetConfig() == nil {
			return &runtime.FilterOverride{Enabled: true}, nil
		}
		inner, err := parseFilterOverride(path+".config", fc.GetConfig(), fc.GetIsOptional())
		if inner != nil {
			inner.Enabled = true
		}
		return inner, err
	case faultType:
		var m faultv3.HTTPFault
		if err = unmarshalTyped(a, faultType, &m); err == nil {
			o.Fault, err = parseFault(path, &m)
		}
	case corsPolicyType:
		var m corsv3.CorsPolicy
		if err = unmarshalTyped(a, corsPolicyType, &m); err == nil {
			o.CORS, err = parseCORSPolicy(path, &m)
		}
	case jwtPerRouteType:
		var m jwtv3.PerRouteConfig
		if err = unmarshalTyped(a, jwtPerRouteType, &m); err == nil && !m.GetDisabled() && m.GetRequirementName() == "" {
			err = fmt.Errorf("%s: want disabled: true or a requirement_name", path)
		}
		if err == nil {
			o.Disabled = m.GetDisabled()
			o.JWTRequirement = m.GetRequirementName()
		}
	case rbacPerRouteType:
		var m httprbacv3.RBACPerRoute
		if err = unmarshalTyped(a, rbacPerRouteType, &m); err == nil {
			if m.GetRbac() == nil {
				o.Disabled = true
			} else {
				r := m.GetRbac()
				o.RBAC, err = parseRBAC(path+".rbac", r.GetRules(), r.GetShadowRules(), r.GetMatcher() != nil || r.GetShadowMatcher() != nil)
				if err == nil {
					o.RBAC.RulesStatPrefix = r.GetRulesStatPrefix()
					o.RBAC.ShadowStatPrefix = r.GetShadowRulesStatPrefix()
				}
			}
		}
	case extAuthzPerRouteTy:
		var m extauthzv3.ExtAuthzPerRoute
		if err = unmarshalTyped(a, extAuthzPerRouteTy, &m); err == nil && !m.GetDisabled() && m.GetCheckSettings() == nil {
			err = fmt.Errorf("%s: want disabled: true or check_settings", path)
		}
		if err == nil {
			o.Disabled = m.GetDisabled()
			if cs := m.GetCheckSettings(); cs != nil {
				if cs.GetServiceOverride() != nil {
					return nil, fmt.Errorf("%s.check_settings.service_override: unsupported", path)
				}
				o.ExtAuthzContext = cs.GetContextExtensions()
			}
		}
	case localRateLimitType:
		var m localrlv3.LocalRateLimit
		if err = unmarshalTyped(a, localRateLimitType, &m); err == nil {
			o.RateLimit, err = parseLocalRateLimit(path, &m, true)
		}
	default:
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: unsupported per-filter config %q", path, a.GetTypeUrl())
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "typed_config") {
			return nil, fmt.Errorf("%s.%w", path, err)
		}
		return nil, err
	}
	return o, nil
}

// attachNetworkRBAC hangs a chain's network RBAC filters, in order, on its
// terminal (an HTTP chain takes at most one, checked by the caller).
func attachNetworkRBAC(c *runtime.FilterChain, rs []*runtime.RBACFilter) {
	switch {
	case len(rs) == 0:
	case c.HTTP != nil:
		c.HTTP.NetworkRBAC = rs[0]
	case c.TCP != nil:
		c.TCP.RBAC = rs
	}
}
