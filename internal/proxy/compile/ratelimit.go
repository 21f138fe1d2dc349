package compile

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

const localRateLimitType = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

// minFillInterval is Envoy's lower bound on a local rate limit bucket's
// fill_interval ("must be >= 50ms to avoid too aggressive refills").
const minFillInterval = 50 * time.Millisecond

// maxRateLimitHeaders bounds each of the filter's header lists (Envoy: 10).
const maxRateLimitHeaders = 10

// parseLocalRateLimit converts an envoy.filters.http.local_ratelimit
// config. perRoute configs must carry a token_bucket, as in Envoy.
// Descriptors and the cluster-wide and per-connection variants are NACKed.
func parseLocalRateLimit(path string, m *localrlv3.LocalRateLimit, perRoute bool) (*runtime.RateLimit, error) {
	switch {
	case m.GetStatPrefix() == "":
		return nil, fmt.Errorf("%s.stat_prefix: empty", path)
	case len(m.GetDescriptors()) > 0:
		return nil, fmt.Errorf("%s.descriptors: unsupported", path)
	case len(m.GetRateLimits()) > 0:
		return nil, fmt.Errorf("%s.rate_limits: unsupported", path)
	case m.GetStage() != 0:
		return nil, fmt.Errorf("%s.stage: unsupported", path)
	case m.GetLocalRateLimitPerDownstreamConnection():
		return nil, fmt.Errorf("%s.local_rate_limit_per_downstream_connection: unsupported", path)
	case m.GetLocalClusterRateLimit() != nil:
		return nil, fmt.Errorf("%s.local_cluster_rate_limit: unsupported", path)
	case m.GetEnableXRatelimitHeaders() != 0:
		return nil, fmt.Errorf("%s.enable_x_ratelimit_headers: unsupported", path)
	case m.GetEnableRetryAfterHeader():
		return nil, fmt.Errorf("%s.enable_retry_after_header: unsupported", path)
	}
	out := &runtime.RateLimit{
		Status:            429,
		ResourceExhausted: m.GetRateLimitedAsResourceExhausted(),
	}
	if c := int(m.GetStatus().GetCode()); c >= 400 {
		out.Status = c
	}
	if tb := m.GetTokenBucket(); tb != nil {
		b, err := parseTokenBucket(path+".token_bucket", tb)
		if err != nil {
			return nil, err
		}
		out.Bucket = b
	} else if perRoute {
		return nil, fmt.Errorf("%s.token_bucket: required in a per-route config", path)
	}
	for name, rf := range map[string]*corev3.RuntimeFractionalPercent{"filter_enabled": m.GetFilterEnabled(), "filter_enforced": m.GetFilterEnforced()} {
		if err := runtimeFraction(path+"."+name, rf); err != nil {
			return nil, err
		}
	}
	for name, n := range map[string]int{"response_headers_to_add": len(m.GetResponseHeadersToAdd()),
		"request_headers_to_add_when_not_enforced": len(m.GetRequestHeadersToAddWhenNotEnforced())} {
		if n > maxRateLimitHeaders {
			return nil, fmt.Errorf("%s.%s: %d headers exceeds %d", path, name, n, maxRateLimitHeaders)
		}
	}
	if e := m.GetFilterEnabled(); e != nil {
		out.Enabled = percent(e.GetDefaultValue())
	}
	if e := m.GetFilterEnforced(); e != nil {
		out.Enforced = percent(e.GetDefaultValue())
	}
	var err error
	if out.ResponseHeaders, err = parseMutation(path+".response_headers_to_add", m.GetResponseHeadersToAdd(), nil); err != nil {
		return nil, err
	}
	if out.RequestHeaders, err = parseMutation(path+".request_headers_to_add_when_not_enforced", m.GetRequestHeadersToAddWhenNotEnforced(), nil); err != nil {
		return nil, err
	}
	return out, nil
}

func parseTokenBucket(path string, tb *typev3.TokenBucket) (*runtime.TokenBucket, error) {
	out := &runtime.TokenBucket{MaxTokens: tb.GetMaxTokens(), TokensPerFill: 1, FillInterval: tb.GetFillInterval().AsDuration()}
	if tb.GetTokensPerFill() != nil {
		if out.TokensPerFill = tb.GetTokensPerFill().GetValue(); out.TokensPerFill == 0 {
			return nil, fmt.Errorf("%s.tokens_per_fill: must be at least 1", path)
		}
	}
	switch {
	case tb.GetFillInterval() == nil:
		return nil, fmt.Errorf("%s.fill_interval: required", path)
	case out.FillInterval < minFillInterval:
		return nil, fmt.Errorf("%s.fill_interval: %v is below %v", path, out.FillInterval, minFillInterval)
	}
	return out, nil
}
