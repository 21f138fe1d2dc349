package translator

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// routeCtx is where a VirtualService's routes are being placed: the
// listener port, the gateway ("mesh" for sidecars, "ns/name" for a Gateway)
// and whether the listener terminates TLS (redirects default to https).
type routeCtx struct {
	port uint32
	gw   string
	tls  bool
}

// vsRoutes converts the http section of one VirtualService into Envoy routes
// for a listener on port, as seen from gateway gw ("mesh" for sidecars,
// "ns/name" for a Gateway).
func (b *builder) vsRoutes(r *config.Resource, port uint32, gw string) []*routev3.Route {
	return b.vsRoutesIn(r, routeCtx{port: port, gw: gw})
}

// vsRoutesIn converts the http rules of one VirtualService, delegates merged
// in (delegate.go). Each HTTPMatchRequest becomes its own route, in order,
// so that Envoy's first-match reproduces Istio's OR semantics. Matches for
// another port, gateway, source workload or source namespace are dropped,
// a rule left with none is skipped, and nothing follows a catch-all route
// (Istio stops there: later routes could never match).
func (b *builder) vsRoutesIn(r *config.Resource, rc routeCtx) []*routev3.Route {
	var out []*routev3.Route
	for _, rule := range b.httpRules(r) {
		hr := rule.route
		matches := hr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingv1.HTTPMatchRequest{nil}
		}
		catchAll := false
		for _, m := range matches {
			if !b.matchApplies(m, rc.port, rc.gw, rule.matchNS) {
				continue
			}
			route := &routev3.Route{Name: routeName(hr, m), Match: routeMatch(m)}
			if !b.setAction(route, hr, rule.ns, rc) {
				continue
			}
			out = append(out, route)
			if isCatchAll(route.GetMatch()) {
				catchAll = true
				break
			}
		}
		if catchAll {
			break
		}
	}
	return out
}

// isCatchAll reports whether a route matches every request: prefix "/" (or
// regex ".*") and no header or query conditions (Istio's IsCatchAllRoute).
func isCatchAll(m *routev3.RouteMatch) bool {
	all := false
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		all = ps.Prefix == "/"
	case *routev3.RouteMatch_SafeRegex:
		all = ps.SafeRegex.GetRegex() == ".*"
	}
	return all && len(m.GetHeaders()) == 0 && len(m.GetQueryParameters()) == 0
}

func routeName(hr *networkingv1.HTTPRoute, m *networkingv1.HTTPMatchRequest) string {
	if m.GetName() == "" {
		return hr.GetName()
	}
	if hr.GetName() == "" {
		return m.GetName()
	}
	return hr.GetName() + "." + m.GetName()
}

// matchApplies filters a match by the conditions Istio evaluates when it
// generates config rather than per request.
func (b *builder) matchApplies(m *networkingv1.HTTPMatchRequest, port uint32, gw, vsNS string) bool {
	if m == nil {
		return true
	}
	if m.GetPort() != 0 && m.GetPort() != port {
		return false
	}
	if gws := m.GetGateways(); len(gws) > 0 && !slices.ContainsFunc(gws, func(g string) bool { return gatewayKey(g, vsNS) == gw }) {
		return false
	}
	if sl := m.GetSourceLabels(); len(sl) > 0 && (b.labels == nil || !registry.LabelsMatch(sl, b.labels)) {
		return false
	}
	if sn := m.GetSourceNamespace(); sn != "" && sn != b.ns {
		return false
	}
	return true
}

// gatewayKey resolves a VirtualService gateway reference: "mesh" as is,
// "ns/name" as is, "name" in the VirtualService's namespace.
func gatewayKey(ref, vsNS string) string {
	if ref == "mesh" || strings.Contains(ref, "/") {
		return ref
	}
	return vsNS + "/" + ref
}

// routeMatch converts one HTTPMatchRequest (nil: match everything).
func routeMatch(m *networkingv1.HTTPMatchRequest) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networkingv1.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networkingv1.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networkingv1.StringMatch_Regex:
		if u.Regex != "" {
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
		}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, k := range sortedKeys(m.GetHeaders()) {
		rm.Headers = append(rm.Headers, routeHeaderMatcher(strings.ToLower(k), m.GetHeaders()[k], false))
	}
	for _, k := range sortedKeys(m.GetWithoutHeaders()) {
		rm.Headers = append(rm.Headers, routeHeaderMatcher(strings.ToLower(k), m.GetWithoutHeaders()[k], true))
	}
	for _, pseudo := range []struct {
		name string
		sm   *networkingv1.StringMatch
	}{{":method", m.GetMethod()}, {":authority", m.GetAuthority()}, {":scheme", m.GetScheme()}} {
		if pseudo.sm != nil {
			rm.Headers = append(rm.Headers, routeHeaderMatcher(pseudo.name, pseudo.sm, false))
		}
	}
	for _, k := range sortedKeys(m.GetQueryParams()) {
		qm := &routev3.QueryParameterMatcher{Name: k}
		if sm := stringMatcher(m.GetQueryParams()[k]); sm != nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

// routeHeaderMatcher matches a header by value, or by presence when the Istio
// match is empty ({}), as Istio does.
func routeHeaderMatcher(name string, sm *networkingv1.StringMatch, invert bool) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: name, InvertMatch: invert}
	if s := stringMatcher(sm); s != nil {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

// stringMatcher converts an Istio StringMatch; nil means "present".
func stringMatcher(sm *networkingv1.StringMatch) *matcherv3.StringMatcher {
	switch v := sm.GetMatchType().(type) {
	case *networkingv1.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v.Exact}}
	case *networkingv1.StringMatch_Prefix:
		if v.Prefix != "" {
			return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v.Prefix}}
		}
	case *networkingv1.StringMatch_Regex:
		if v.Regex != "" {
			return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v.Regex}}}
		}
	}
	return nil
}

// setAction fills route's action, header edits and per-filter config
// (fault, CORS) from hr; false when hr has no action Trellis can express.
// Short host names resolve in namespace ns.
func (b *builder) setAction(route *routev3.Route, hr *networkingv1.HTTPRoute, ns string, rc routeCtx) bool {
	reqAdd, reqRemove := headerOps(hr.GetHeaders().GetRequest())
	respAdd, respRemove := headerOps(hr.GetHeaders().GetResponse())
	switch {
	case hr.GetRedirect() != nil:
		route.Action = &routev3.Route_Redirect{Redirect: redirectAction(hr.GetRedirect(), rc.port, rc.tls)}
	case hr.GetDirectResponse() != nil:
		route.Action = &routev3.Route_DirectResponse{DirectResponse: directResponse(hr.GetDirectResponse())}
	case len(hr.GetRoute()) > 0:
		ra := &routev3.RouteAction{Timeout: duration(0), RetryPolicy: retryPolicy(hr.GetRetries())}
		if t := hr.GetTimeout(); t != nil {
			ra.Timeout = duration(t.AsDuration())
		}
		if rw := hr.GetRewrite(); rw != nil {
			if rr := rw.GetUriRegexRewrite(); rr != nil {
				ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: rr.GetMatch()},
					Substitution: rr.GetRewrite(),
				}
			} else {
				ra.PrefixRewrite = rw.GetUri()
			}
			if rw.GetAuthority() != "" {
				ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
			}
		}
		ra.RequestMirrorPolicies = b.mirrorPolicies(hr, ns, rc.port)
		dests := hr.GetRoute()
		if len(dests) > 1 {
			dests = slices.DeleteFunc(slices.Clone(dests), func(d *networkingv1.HTTPRouteDestination) bool { return d.GetWeight() <= 0 })
			if len(dests) == 0 {
				dests = hr.GetRoute()[:1]
			}
		}
		if len(dests) == 1 {
			d := dests[0]
			ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: b.destinationCluster(d.GetDestination(), ns, rc.port)}
			// A single destination's header edits join the route's.
			add, remove := headerOps(d.GetHeaders().GetRequest())
			reqAdd, reqRemove = append(reqAdd, add...), append(reqRemove, remove...)
			add, remove = headerOps(d.GetHeaders().GetResponse())
			respAdd, respRemove = append(respAdd, add...), append(respRemove, remove...)
		} else {
			wc := &routev3.WeightedCluster{}
			for _, d := range dests {
				cw := &routev3.WeightedCluster_ClusterWeight{
					Name:   b.destinationCluster(d.GetDestination(), ns, rc.port),
					Weight: wrapperspb.UInt32(uint32(d.GetWeight())),
				}
				cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOps(d.GetHeaders().GetRequest())
				cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOps(d.GetHeaders().GetResponse())
				wc.Clusters = append(wc.Clusters, cw)
			}
			ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
		}
		route.Action = &routev3.Route_Route{Route: ra}
	default:
		return false
	}
	route.RequestHeadersToAdd, route.RequestHeadersToRemove = reqAdd, reqRemove
	route.ResponseHeadersToAdd, route.ResponseHeadersToRemove = respAdd, respRemove
	if b.proxy.Type != Proxyless {
		// gRPC's xDS client has no CORS filter and this translator gives it
		// no fault filter; both stay sidecar and gateway features.
		route.TypedPerFilterConfig = perFilterConfig(hr)
	}
	return true
}

func directResponse(dr *networkingv1.HTTPDirectResponse) *routev3.DirectResponseAction {
	action := &routev3.DirectResponseAction{Status: dr.GetStatus()}
	switch body := dr.GetBody().GetSpecifier().(type) {
	case *networkingv1.HTTPBody_String_:
		action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body.String_}}
	case *networkingv1.HTTPBody_Bytes:
		action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: body.Bytes}}
	}
	return action
}

// mirrorPolicies are Istio's mirror (with mirrorPercentage) and mirrors[]:
// one request_mirror_policies entry each, runtime_fraction the percentage
// (100% when unset; an explicit 0 drops the mirror).
func (b *builder) mirrorPolicies(hr *networkingv1.HTTPRoute, ns string, port uint32) []*routev3.RouteAction_RequestMirrorPolicy {
	var out []*routev3.RouteAction_RequestMirrorPolicy
	add := func(d *networkingv1.Destination, pct *networkingv1.Percent) {
		if d == nil {
			return
		}
		frac := fractionHundred(100)
		if pct != nil {
			if pct.GetValue() <= 0 {
				return
			}
			frac = fractionMillion(pct.GetValue())
		}
		out = append(out, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         b.destinationCluster(d, ns, port),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: frac},
			TraceSampled:    wrapperspb.Bool(false),
		})
	}
	add(hr.GetMirror(), hr.GetMirrorPercentage())
	for _, m := range hr.GetMirrors() {
		add(m.GetDestination(), m.GetPercentage())
	}
	return out
}

func headerOps(ops *networkingv1.Headers_HeaderOperations) ([]*corev3.HeaderValueOption, []string) {
	if ops == nil {
		return nil, nil
	}
	return headerOptions(ops.GetSet(), ops.GetAdd()), slices.Clone(ops.GetRemove())
}

// destinationCluster names the cluster of a route destination: the host
// resolved in the VirtualService's namespace; the port as written, else the
// service's only port, else the listener's port.
func (b *builder) destinationCluster(d *networkingv1.Destination, vsNS string, listenerPort uint32) string {
	host := b.fqdn(d.GetHost(), vsNS)
	port := d.GetPort().GetNumber()
	if port == 0 {
		port = listenerPort
		if svc := b.anyService(host); svc != nil && len(svc.Ports) == 1 {
			port = svc.Ports[0].Number
		}
	}
	return clusterName(port, d.GetSubset(), host)
}

// anyService finds host among visible services, then the whole registry.
func (b *builder) anyService(host string) *registry.Service {
	if s := b.service(host); s != nil {
		return s
	}
	for _, s := range b.reg.Services {
		if s.Hostname == host {
			return s
		}
	}
	return nil
}

// retryPolicy converts Istio's retries as pilot's retry.ConvertPolicy does:
// nil means Istio's default policy, attempts 0 disables retries (no policy:
// gRPC rejects num_retries 0). retryOn entries that are HTTP status codes
// become retriable_status_codes; backoff is retry_back_off's base interval
// (Envoy's default, 25ms jittered, otherwise); retryRemoteLocalities adds the
// previous_priorities retry priority and retryIgnorePreviousHosts the
// previous_hosts predicate.
func retryPolicy(r *networkingv1.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.GetAttempts() <= 0 {
		return nil
	}
	rp := defaultRetryPolicy()
	rp.NumRetries = wrapperspb.UInt32(uint32(r.GetAttempts()))
	if t := r.GetPerTryTimeout(); t != nil {
		rp.PerTryTimeout = duration(t.AsDuration())
	}
	if r.GetRetryOn() != "" {
		var on []string
		var codes []uint32
		for _, part := range strings.Split(r.GetRetryOn(), ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
				codes = append(codes, uint32(n))
				continue
			}
			on = append(on, part)
		}
		if len(codes) > 0 && !slices.Contains(on, "retriable-status-codes") {
			on = append(on, "retriable-status-codes")
		}
		rp.RetryOn, rp.RetriableStatusCodes = strings.Join(on, ","), codes
	}
	if r.GetRetryIgnorePreviousHosts().GetValue() {
		rp.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{previousHostsPredicate()}
	}
	if r.GetRetryRemoteLocalities().GetValue() {
		rp.RetryPriority = previousPriorities()
	}
	if b := r.GetBackoff(); b != nil && b.AsDuration() > 0 {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: duration(b.AsDuration())}
	}
	return rp
}

// redirectAction is Istio's ApplyRedirect: derivePort FROM_REQUEST_PORT is
// the listener's port (routes are built per port), FROM_PROTOCOL_DEFAULT
// leaves the port out; an explicit :80 for http or :443 for https is dropped.
func redirectAction(r *networkingv1.HTTPRedirect, port uint32, tls bool) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{HostRedirect: r.GetAuthority()}
	switch {
	case r.GetUri() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.GetUri()}
	case r.GetPrefixRewrite() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.GetPrefixRewrite()}
	}
	if r.GetScheme() != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.GetScheme()}
	}
	if r.GetRedirectPort() != nil {
		switch rp := r.GetRedirectPort().(type) {
		case *networkingv1.HTTPRedirect_DerivePort:
			if rp.DerivePort == networkingv1.HTTPRedirect_FROM_REQUEST_PORT {
				ra.PortRedirect = port
			}
		case *networkingv1.HTTPRedirect_Port:
			ra.PortRedirect = rp.Port
		}
		scheme := r.GetScheme()
		if scheme == "" {
			scheme = "http"
			if tls {
				scheme = "https"
			}
		}
		if (ra.PortRedirect == 80 && scheme == "http") || (ra.PortRedirect == 443 && scheme == "https") {
			ra.PortRedirect = 0
		}
	}
	switch r.GetRedirectCode() {
	case 302:
		ra.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		ra.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	}
	return ra
}
