package translator

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	emptypb "google.golang.org/protobuf/types/known/emptypb"
	securityv1 "istio.io/api/security/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// JWKS fetching defaults. Istio's jwksResolver refreshes every 20 minutes
// and times out after 5 seconds.
const (
	jwksCacheDuration = 20 * time.Minute
	jwksFetchTimeout  = 5 * time.Second
)

// jwtRules returns the JWT rules of the RequestAuthentications that apply
// to the workload (same scope rules as AuthorizationPolicy), in order; the
// first rule for an issuer wins.
func (b *builder) jwtRules() []*securityv1.JWTRule {
	var out []*securityv1.JWTRule
	seen := map[string]bool{}
	for _, r := range b.scopedPolicies(config.KindRequestAuthentication, func(s any) policyTarget {
		ra := s.(*securityv1.RequestAuthentication)
		return targetOf(ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs())
	}) {
		for _, rule := range r.Spec.(*securityv1.RequestAuthentication).GetJwtRules() {
			if seen[rule.GetIssuer()] {
				continue
			}
			seen[rule.GetIssuer()] = true
			out = append(out, rule)
		}
	}
	return out
}

// jwtIssuers are the issuers of jwtRules, the metadata keys verified
// payloads are stored under.
func (b *builder) jwtIssuers() []string {
	var out []string
	for _, r := range b.jwtRules() {
		out = append(out, r.GetIssuer())
	}
	return out
}

// jwtAuthn is the jwt_authn filter config for the workload, or nil when no
// RequestAuthentication applies. Providers are origins-0, origins-1, ...
// (Istio's names). The one rule requires any provider OR allow_missing:
// a request without a token passes (authorization decides), while a
// present token that no provider verifies fails allow_missing too and is
// answered 401 — Istio's semantics.
func (b *builder) jwtAuthn() *jwtv3.JwtAuthentication {
	rules := b.jwtRules()
	if len(rules) == 0 {
		return nil
	}
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}}
	var any []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := "origins-" + strconv.Itoa(i)
		cfg.Providers[name] = b.jwtProvider(r)
		any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}})
	}
	any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
			RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: any}},
		}},
	}}
	return cfg
}

func (b *builder) jwtProvider(r *securityv1.JWTRule) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:               r.GetIssuer(),
		Audiences:            slices.Clone(r.GetAudiences()),
		Forward:              r.GetForwardOriginalToken(),
		ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
		PayloadInMetadata:    r.GetIssuer(),
		FromParams:           slices.Clone(r.GetFromParams()),
		FromCookies:          slices.Clone(r.GetFromCookies()),
	}
	for _, h := range r.GetFromHeaders() {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	if len(p.FromHeaders) == 0 && len(p.FromParams) == 0 && len(p.FromCookies) == 0 {
		// Istio's (and Envoy's) default locations, written out so the proxy
		// need not know the default.
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		p.FromParams = []string{"access_token"}
	}
	for _, ch := range r.GetOutputClaimToHeaders() {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: ch.GetHeader(), ClaimName: ch.GetClaim()})
	}
	if jwks := r.GetJwks(); jwks != "" {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: jwks},
		}}
		return p
	}
	timeout := jwksFetchTimeout
	if t := r.GetTimeout(); t != nil {
		timeout = t.AsDuration()
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              r.GetJwksUri(),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: jwksCluster(r.GetJwksUri())},
			Timeout:          duration(timeout),
		},
		CacheDuration: duration(jwksCacheDuration),
		AsyncFetch:    &jwtv3.JwksAsyncFetch{},
	}}
	return p
}

// jwksCluster names the cluster a JWKS is fetched through, Istio's
// outbound|PORT||HOST of the URI. trellis-proxy fetches the URI directly
// when no such cluster exists (docs/xds.md).
func jwksCluster(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return "outbound|443||unknown"
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	n, _ := strconv.ParseUint(port, 10, 16)
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	return clusterName(uint32(n), "", host)
}
