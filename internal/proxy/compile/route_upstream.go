package compile

import (
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

const (
	previousHostsType      = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
	previousPrioritiesType = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
)

// parseHashPolicies converts a route's hash_policy.
func parseHashPolicies(path string, hps []*routev3.RouteAction_HashPolicy) ([]runtime.HashPolicy, error) {
	var out []runtime.HashPolicy
	for i, hp := range hps {
		p := fmt.Sprintf("%s.hash_policy[%d]", path, i)
		h := runtime.HashPolicy{Terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			if s.Header.GetRegexRewrite() != nil {
				return nil, fmt.Errorf("%s.header.regex_rewrite: unsupported", p)
			}
			if err := headerName(p+".header.header_name", s.Header.GetHeaderName()); err != nil {
				return nil, err
			}
			h.Kind, h.Name = runtime.HashHeader, strings.ToLower(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			if len(s.Cookie.GetAttributes()) > 0 {
				return nil, fmt.Errorf("%s.cookie.attributes: unsupported", p)
			}
			if s.Cookie.GetName() == "" {
				return nil, fmt.Errorf("%s.cookie.name: empty", p)
			}
			h.Kind, h.Name = runtime.HashCookie, s.Cookie.GetName()
			if ttl := s.Cookie.GetTtl(); ttl != nil {
				h.CookieGenerate, h.CookieTTL = true, ttl.AsDuration()
			}
			h.CookiePath = s.Cookie.GetPath()
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.GetSourceIp() {
				continue // hashes nothing
			}
			h.Kind = runtime.HashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			if s.QueryParameter.GetName() == "" {
				return nil, fmt.Errorf("%s.query_parameter.name: empty", p)
			}
			h.Kind, h.Name = runtime.HashQuery, s.QueryParameter.GetName()
		default:
			return nil, fmt.Errorf("%s: unsupported hash policy %T", p, s)
		}
		out = append(out, h)
	}
	return out, nil
}

// parseMirrors converts request_mirror_policies.
func parseMirrors(path string, ms []*routev3.RouteAction_RequestMirrorPolicy) ([]runtime.MirrorPolicy, error) {
	var out []runtime.MirrorPolicy
	for i, m := range ms {
		p := fmt.Sprintf("%s.request_mirror_policies[%d]", path, i)
		switch {
		case m.GetClusterHeader() != "":
			return nil, fmt.Errorf("%s.cluster_header: unsupported", p)
		case m.GetCluster() == "":
			return nil, fmt.Errorf("%s.cluster: empty", p)
		}
		mp := runtime.MirrorPolicy{Cluster: m.GetCluster(), PerMillion: 1_000_000, KeepHost: m.GetDisableShadowHostSuffixAppend()}
		if err := runtimeFraction(p+".runtime_fraction", m.GetRuntimeFraction()); err != nil {
			return nil, err
		}
		if rf := m.GetRuntimeFraction(); rf != nil {
			mp.PerMillion = perMillion(rf.GetDefaultValue())
		}
		out = append(out, mp)
	}
	return out, nil
}

// perMillion converts a FractionalPercent to parts per million, capped at
// one million as Envoy caps it.
func perMillion(f *typev3.FractionalPercent) uint32 {
	n := uint64(f.GetNumerator())
	switch f.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	return uint32(min(n, 1_000_000))
}

// parseRetryExtras reads the retry_policy fields beyond the basics:
// back-off, host predicates and retry priority.
func parseRetryExtras(path string, rp *routev3.RetryPolicy, out *runtime.RetryPolicy) error {
	switch {
	case len(rp.GetRetriableHeaders()) > 0 || len(rp.GetRetriableRequestHeaders()) > 0:
		return fmt.Errorf("%s.retriable_headers: unsupported", path)
	case rp.GetRateLimitedRetryBackOff() != nil:
		return fmt.Errorf("%s.rate_limited_retry_back_off: unsupported", path)
	case len(rp.GetRetryOptionsPredicates()) > 0:
		return fmt.Errorf("%s.retry_options_predicates: unsupported", path)
	case rp.GetPerTryIdleTimeout() != nil:
		return fmt.Errorf("%s.per_try_idle_timeout: unsupported", path)
	}
	if b := rp.GetRetryBackOff(); b != nil {
		if b.GetBaseInterval() == nil {
			return fmt.Errorf("%s.retry_back_off.base_interval: required", path)
		}
		if err := positiveDuration(path+".retry_back_off.base_interval", b.GetBaseInterval()); err != nil {
			return err
		}
		if err := positiveDuration(path+".retry_back_off.max_interval", b.GetMaxInterval()); err != nil {
			return err
		}
		out.BackOff = runtime.RetryBackOff{Base: durationOf(b.GetBaseInterval()), Max: durationOf(b.GetMaxInterval())}
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		if hp.GetTypedConfig().GetTypeUrl() != previousHostsType {
			return fmt.Errorf("%s.retry_host_predicate[%d]: unsupported predicate %q", path, i, hp.GetName())
		}
		var ph previoushostsv3.PreviousHostsPredicate
		if err := unmarshalTyped(hp.GetTypedConfig(), previousHostsType, &ph); err != nil {
			return fmt.Errorf("%s.retry_host_predicate[%d].%w", path, i, err)
		}
		out.PreviousHosts = true
	}
	out.HostSelectionAttempts = uint32(max(rp.GetHostSelectionRetryMaxAttempts(), 0))
	if pr := rp.GetRetryPriority(); pr != nil {
		if pr.GetTypedConfig().GetTypeUrl() != previousPrioritiesType {
			return fmt.Errorf("%s.retry_priority: unsupported %q", path, pr.GetName())
		}
		var pp previousprioritiesv3.PreviousPrioritiesConfig
		if err := unmarshalTyped(pr.GetTypedConfig(), previousPrioritiesType, &pp); err != nil {
			return fmt.Errorf("%s.retry_priority.%w", path, err)
		}
		out.PreviousPriorities = true
	}
	return nil
}
