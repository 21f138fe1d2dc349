package compile

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func hundred(n uint32) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}}
}

// istioLocalRateLimit is the shape Istio's docs put in an EnvoyFilter.
func istioLocalRateLimit() *localrlv3.LocalRateLimit {
	return &localrlv3.LocalRateLimit{
		StatPrefix:     "http_local_rate_limiter",
		TokenBucket:    &typev3.TokenBucket{MaxTokens: 10, TokensPerFill: wrapperspb.UInt32(5), FillInterval: durationpb.New(time.Minute)},
		FilterEnabled:  hundred(100),
		FilterEnforced: hundred(100),
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-local-rate-limit", Value: "true"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}

func TestParseLocalRateLimit(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*localrlv3.LocalRateLimit)
		perRoute bool
		want     *runtime.RateLimit
		wantErr  string
	}{
		{name: "istio docs", want: &runtime.RateLimit{
			Bucket:          &runtime.TokenBucket{MaxTokens: 10, TokensPerFill: 5, FillInterval: time.Minute},
			Enabled:         runtime.PercentMillion,
			Enforced:        runtime.PercentMillion,
			Status:          429,
			ResponseHeaders: runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-local-rate-limit", Value: "true"}}},
		}},
		{name: "defaults: 0% enabled, one token per fill, 429", edit: func(m *localrlv3.LocalRateLimit) {
			m.FilterEnabled, m.FilterEnforced, m.ResponseHeadersToAdd = nil, nil, nil
			m.TokenBucket.TokensPerFill = nil
			m.Status = &typev3.HttpStatus{Code: typev3.StatusCode_OK} // < 400: 429
		}, want: &runtime.RateLimit{
			Bucket: &runtime.TokenBucket{MaxTokens: 10, TokensPerFill: 1, FillInterval: time.Minute},
			Status: 429,
		}},
		{name: "custom status, enforced 50%, gRPC resource exhausted", edit: func(m *localrlv3.LocalRateLimit) {
			m.Status = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
			m.FilterEnforced = hundred(50)
			m.RateLimitedAsResourceExhausted = true
			m.ResponseHeadersToAdd = nil
			m.RequestHeadersToAddWhenNotEnforced = []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "x-would-limit", Value: "1"},
				AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
			}}
		}, want: &runtime.RateLimit{
			Bucket:            &runtime.TokenBucket{MaxTokens: 10, TokensPerFill: 5, FillInterval: time.Minute},
			Enabled:           runtime.PercentMillion,
			Enforced:          runtime.PercentMillion / 2,
			Status:            503,
			RequestHeaders:    runtime.HeaderMutation{Add: []runtime.Header{{Name: "x-would-limit", Value: "1"}}},
			ResourceExhausted: true,
		}},
		{name: "no bucket in the listener's filter", edit: func(m *localrlv3.LocalRateLimit) { m.TokenBucket, m.ResponseHeadersToAdd = nil, nil },
			want: &runtime.RateLimit{Enabled: runtime.PercentMillion, Enforced: runtime.PercentMillion, Status: 429}},
		{name: "no bucket per route", perRoute: true, edit: func(m *localrlv3.LocalRateLimit) { m.TokenBucket = nil },
			wantErr: "p.token_bucket: required in a per-route config"},
		{name: "fill interval too short", edit: func(m *localrlv3.LocalRateLimit) { m.TokenBucket.FillInterval = durationpb.New(10 * time.Millisecond) },
			wantErr: "p.token_bucket.fill_interval: 10ms is below 50ms"},
		{name: "no fill interval", edit: func(m *localrlv3.LocalRateLimit) { m.TokenBucket.FillInterval = nil },
			wantErr: "p.token_bucket.fill_interval: required"},
		{name: "zero tokens per fill", edit: func(m *localrlv3.LocalRateLimit) { m.TokenBucket.TokensPerFill = wrapperspb.UInt32(0) },
			wantErr: "p.token_bucket.tokens_per_fill: must be at least 1"},
		{name: "no stat prefix", edit: func(m *localrlv3.LocalRateLimit) { m.StatPrefix = "" }, wantErr: "p.stat_prefix: empty"},
		{name: "per-connection buckets", edit: func(m *localrlv3.LocalRateLimit) { m.LocalRateLimitPerDownstreamConnection = true },
			wantErr: "p.local_rate_limit_per_downstream_connection: unsupported"},
		{name: "stage", edit: func(m *localrlv3.LocalRateLimit) { m.Stage = 1 }, wantErr: "p.stage: unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := istioLocalRateLimit()
			if tc.edit != nil {
				tc.edit(m)
			}
			got, err := parseLocalRateLimit("p", m, tc.perRoute)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLocalRateLimitFilterAndOverride: the filter in http_filters and a
// route's typed_per_filter_config both reach the runtime config.
func TestLocalRateLimitFilterAndOverride(t *testing.T) {
	hcm := rdsHCM(t, "r")
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{
		Name:       runtime.FilterRateLimit,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &localrlv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})},
	}}, hcm.HttpFilters...)
	l, err := ParseListener(listener("l", "127.0.0.1", 80, corev3.TrafficDirection_INBOUND,
		filter(t, "envoy.filters.network.http_connection_manager", hcm)))
	if err != nil {
		t.Fatal(err)
	}
	fs := l.Runtime.FilterChains[0].HTTP.Filters
	if len(fs) != 1 || fs[0].Name != runtime.FilterRateLimit || fs[0].RateLimit == nil || fs[0].RateLimit.Bucket != nil {
		t.Fatalf("filters = %+v, want one local_ratelimit without a bucket", fs)
	}

	rc := simpleRoute("r", "svc", "c")
	rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{runtime.FilterRateLimit: mustAny(t, istioLocalRateLimit())}
	rt, err := ParseRouteConfiguration(rc)
	if err != nil {
		t.Fatal(err)
	}
	o := rt.VirtualHosts[0].Routes[0].PerFilter[runtime.FilterRateLimit]
	if o == nil || o.RateLimit == nil || o.RateLimit.Bucket == nil || o.RateLimit.Bucket.MaxTokens != 10 {
		t.Fatalf("override = %+v, want the route's bucket of 10", o)
	}

	rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{
		runtime.FilterRateLimit: mustAny(t, &localrlv3.LocalRateLimit{StatPrefix: "x"})}
	_, err = ParseRouteConfiguration(rc)
	if want := "token_bucket: required in a per-route config"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("error = %v, want one ending %q", err, want)
	}
}
