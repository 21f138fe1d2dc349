package translator

import (
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// Istio's CUSTOM wiring: a shadow RBAC filter with this stat prefix marks
// requests that match a CUSTOM rule in its dynamic metadata, and ext_authz
// is enabled only for those.
const (
	nameRBACHTTP         = "envoy.filters.http.rbac"
	nameExtAuthz         = "envoy.filters.http.ext_authz"
	extAuthzStatPrefix   = "istio_ext_authz_"
	extAuthzShadowPolicy = extAuthzStatPrefix + "shadow_effective_policy_id"
	defaultExtAuthzTO    = 600 * time.Second // Istio's default provider timeout
)

// extAuthz is the ext_authz filter for provider p, enabled by the CUSTOM
// shadow rule's metadata as Istio does.
func extAuthz(p snapshot.ExtAuthzProvider) *extauthzv3.ExtAuthz {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = defaultExtAuthzTO
	}
	cluster := clusterName(p.Port, "", p.Service)
	cfg := &extauthzv3.ExtAuthz{
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    p.FailOpen,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{
			Filter: nameRBACHTTP,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: extAuthzShadowPolicy}}},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzPolicyPrefix},
			}}},
		},
	}
	if p.StatusOnError != 0 {
		cfg.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode(p.StatusOnError)}
	}
	if p.GRPC {
		cfg.Services = &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: cluster,
				Authority:   p.Service,
			}},
			Timeout: duration(timeout),
		}}
		return cfg
	}
	cfg.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
		ServerUri: &corev3.HttpUri{
			Uri:              "http://" + net.JoinHostPort(p.Service, portString(p.Port)),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
			Timeout:          duration(timeout),
		},
		PathPrefix:           p.PathPrefix,
		AuthorizationRequest: &extauthzv3.AuthorizationRequest{AllowedHeaders: headerList(p.IncludeRequestHeaders)},
		AuthorizationResponse: &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders:        headerList(p.HeadersToUpstreamOnAllow),
			AllowedClientHeaders:          headerList(p.HeadersToDownstreamOnDeny),
			AllowedClientHeadersOnSuccess: headerList(p.HeadersToDownstreamOnAllow),
		},
	}}
	return cfg
}

// headerList matches header names case-insensitively; nil for none.
func headerList(names []string) *matcherv3.ListStringMatcher {
	if len(names) == 0 {
		return nil
	}
	l := &matcherv3.ListStringMatcher{}
	for _, n := range names {
		l.Patterns = append(l.Patterns, &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}, IgnoreCase: true,
		})
	}
	return l
}
