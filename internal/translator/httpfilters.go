package translator

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// HTTP filter and retry extension names Istio uses (docs/xds.md).
const (
	nameFault              = "envoy.filters.http.fault"
	nameCORS               = "envoy.filters.http.cors"
	namePreviousHosts      = "envoy.retry_host_predicates.previous_hosts"
	namePreviousPriorities = "envoy.retry_priorities.previous_priorities"
)

// perFilterConfig is a route's typed_per_filter_config: Istio's fault
// (envoy.filters.http.fault HTTPFault) and corsPolicy
// (envoy.filters.http.cors CorsPolicy); nil when hr has neither.
func perFilterConfig(hr *networkingv1.HTTPRoute) map[string]*anypb.Any {
	var out map[string]*anypb.Any
	if f := faultConfig(hr.GetFault()); f != nil {
		out = map[string]*anypb.Any{nameFault: typed(f)}
	}
	if c := corsConfig(hr.GetCorsPolicy()); c != nil {
		if out == nil {
			out = map[string]*anypb.Any{}
		}
		out[nameCORS] = typed(c)
	}
	return out
}

// fractionMillion is Istio's translatePercentToFractionalPercent: a
// percentage with up to four decimals as parts per million.
func fractionMillion(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(pct * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

// fractionHundred is Istio's translateIntegerToFractionalPercent.
func fractionHundred(pct int32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(max(pct, 0)), Denominator: typev3.FractionalPercent_HUNDRED}
}

// faultConfig is Istio's TranslateFault: delay with fixed_delay and a
// percentage (the deprecated integer percent when percentage is unset, so an
// unset percentage delays nothing, as in Istio); abort with http_status or
// grpc_status and a percentage (unset: Envoy's default, every request).
func faultConfig(in *networkingv1.HTTPFaultInjection) *faultv3.HTTPFault {
	if in == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := in.GetDelay(); d != nil && d.GetFixedDelay() != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: duration(d.GetFixedDelay().AsDuration())},
		}
		if p := d.GetPercentage(); p != nil {
			out.Delay.Percentage = fractionMillion(p.GetValue())
		} else {
			out.Delay.Percentage = fractionHundred(d.GetPercent()) //nolint:staticcheck // Istio still honours percent
		}
	}
	if a := in.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{}
		if p := a.GetPercentage(); p != nil {
			abort.Percentage = fractionMillion(p.GetValue())
		}
		switch e := a.GetErrorType().(type) {
		case *networkingv1.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
			out.Abort = abort
		case *networkingv1.HTTPFaultInjection_Abort_GrpcStatus:
			if code, ok := GRPCStatusCode(e.GrpcStatus); ok {
				abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
				out.Abort = abort
			}
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// grpcCodes are gRPC's status names (doc/statuscodes.md), as Istio accepts
// them in fault.abort.grpcStatus.
var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// GRPCStatusCode maps a gRPC status name ("UNAVAILABLE") or number ("14") to
// its code.
func GRPCStatusCode(s string) (uint32, bool) {
	for i, n := range grpcCodes {
		if strings.EqualFold(n, s) {
			return uint32(i), true
		}
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n < uint64(len(grpcCodes)) {
		return uint32(n), true
	}
	return 0, false
}

// corsConfig is Istio's TranslateCORSPolicy: origins as string matchers,
// lists comma-joined, max_age in seconds, the filter enabled at 100%, and
// preflights that match no origin forwarded unless unmatchedPreflights is
// IGNORE.
func corsConfig(in *networkingv1.CorsPolicy) *corsv3.CorsPolicy {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:                 strings.Join(in.GetAllowMethods(), ","),
		AllowHeaders:                 strings.Join(in.GetAllowHeaders(), ","),
		ExposeHeaders:                strings.Join(in.GetExposeHeaders(), ","),
		AllowCredentials:             in.GetAllowCredentials(),
		FilterEnabled:                &corev3.RuntimeFractionalPercent{DefaultValue: fractionHundred(100)},
		ForwardNotMatchingPreflights: wrapperspb.Bool(in.GetUnmatchedPreflights() != networkingv1.CorsPolicy_IGNORE),
	}
	for _, o := range in.GetAllowOrigins() {
		if sm := stringMatcher(o); sm != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
		}
	}
	if len(in.GetAllowOrigins()) == 0 {
		for _, o := range in.GetAllowOrigin() { //nolint:staticcheck // deprecated but still Istio API
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(&networkingv1.StringMatch{
				MatchType: &networkingv1.StringMatch_Exact{Exact: o},
			}))
		}
	}
	if m := in.GetMaxAge(); m != nil {
		out.MaxAge = strconv.FormatInt(m.GetSeconds(), 10)
	}
	return out
}

func previousHostsPredicate() *routev3.RetryPolicy_RetryHostPredicate {
	return &routev3.RetryPolicy_RetryHostPredicate{
		Name:       namePreviousHosts,
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: typed(&previoushostsv3.PreviousHostsPredicate{})},
	}
}

// previousPriorities is Istio's retryRemoteLocalities: each retry moves to
// the next priority (locality) not tried yet, recomputed every 2 attempts.
func previousPriorities() *routev3.RetryPolicy_RetryPriority {
	return &routev3.RetryPolicy_RetryPriority{
		Name: namePreviousPriorities,
		ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{
			TypedConfig: typed(&previousprioritiesv3.PreviousPrioritiesConfig{UpdateFrequency: 2}),
		},
	}
}

// routeFilters are the HTTP filters that typed_per_filter_config on routes
// needs, in Istio's order (fault, then CORS), ahead of the router. Istio puts
// both into every HTTP connection manager; Trellis adds each only to the
// outbound and gateway managers of a proxy whose routes configure it, which
// behaves the same (an unconfigured fault or CORS filter does nothing) and
// keeps proxies that lack them working for everyone else.
type routeFilters struct{ fault, cors bool }

// httpFilters returns the filters to put before the router.
func (f routeFilters) httpFilters() []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if f.fault {
		out = append(out, &hcmv3.HttpFilter{Name: nameFault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&faultv3.HTTPFault{})}})
	}
	if f.cors {
		out = append(out, &hcmv3.HttpFilter{Name: nameCORS, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&corsv3.Cors{})}})
	}
	return out
}

// routeFiltersUsed scans the VirtualServices rs (delegates merged) for
// fault and corsPolicy.
func (b *builder) routeFiltersUsed(rs []*config.Resource) routeFilters {
	var f routeFilters
	if b.proxy.Type == Proxyless {
		return f
	}
	for _, r := range rs {
		for _, rule := range b.httpRules(r) {
			f.fault = f.fault || faultConfig(rule.route.GetFault()) != nil
			f.cors = f.cors || rule.route.GetCorsPolicy() != nil
		}
	}
	return f
}
