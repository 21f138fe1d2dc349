package translator

import (
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

// vsRoutes converts the http section of one VirtualService into Envoy routes
// for a listener on port, as seen from gateway gw ("mesh" for sidecars,
// "ns/name" for a Gateway). Each HTTPMatchRequest becomes its own route, in
// order, so that Envoy's first-match reproduces Istio's OR semantics. Matches
// for another port, gateway, source workload or source namespace are
// dropped, and a route left with none is skipped.
//
// TODO(next issue): fault, mirror/mirrors, corsPolicy, delegate,
// uriRegexRewrite and redirect derivePort are ignored.
func (b *builder) vsRoutes(r *config.Resource, port uint32, gw string) []*routev3.Route {
	vs := r.Spec.(*networkingv1.VirtualService)
	var out []*routev3.Route
	for _, hr := range vs.GetHttp() {
		if hr.GetDelegate() != nil {
			continue // TODO(next issue): delegate VirtualServices.
		}
		matches := hr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingv1.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			if !b.matchApplies(m, port, gw, r.Meta.Namespace) {
				continue
			}
			route := &routev3.Route{Name: routeName(hr, m), Match: routeMatch(m)}
			if !b.setAction(route, hr, r.Meta.Namespace, port) {
				continue
			}
			out = append(out, route)
		}
	}
	return out
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
		rm.Headers = append(rm.Headers, headerMatcher(strings.ToLower(k), m.GetHeaders()[k], false))
	}
	for _, k := range sortedKeys(m.GetWithoutHeaders()) {
		rm.Headers = append(rm.Headers, headerMatcher(strings.ToLower(k), m.GetWithoutHeaders()[k], true))
	}
	for _, pseudo := range []struct {
		name string
		sm   *networkingv1.StringMatch
	}{{":method", m.GetMethod()}, {":authority", m.GetAuthority()}, {":scheme", m.GetScheme()}} {
		if pseudo.sm != nil {
			rm.Headers = append(rm.Headers, headerMatcher(pseudo.name, pseudo.sm, false))
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

// headerMatcher matches a header by value, or by presence when the Istio
// match is empty ({}), as Istio does.
func headerMatcher(name string, sm *networkingv1.StringMatch, invert bool) *routev3.HeaderMatcher {
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

// setAction fills route's action and header edits from hr; false when hr has
// no action Trellis can express.
func (b *builder) setAction(route *routev3.Route, hr *networkingv1.HTTPRoute, vsNS string, port uint32) bool {
	reqAdd, reqRemove := headerOps(hr.GetHeaders().GetRequest())
	respAdd, respRemove := headerOps(hr.GetHeaders().GetResponse())
	switch {
	case hr.GetRedirect() != nil:
		route.Action = &routev3.Route_Redirect{Redirect: redirectAction(hr.GetRedirect())}
	case hr.GetDirectResponse() != nil:
		dr := hr.GetDirectResponse()
		action := &routev3.DirectResponseAction{Status: dr.GetStatus()}
		switch body := dr.GetBody().GetSpecifier().(type) {
		case *networkingv1.HTTPBody_String_:
			action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body.String_}}
		case *networkingv1.HTTPBody_Bytes:
			action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: body.Bytes}}
		}
		route.Action = &routev3.Route_DirectResponse{DirectResponse: action}
	case len(hr.GetRoute()) > 0:
		ra := &routev3.RouteAction{Timeout: duration(0), RetryPolicy: retryPolicy(hr.GetRetries())}
		if t := hr.GetTimeout(); t != nil {
			ra.Timeout = duration(t.AsDuration())
		}
		if rw := hr.GetRewrite(); rw != nil {
			ra.PrefixRewrite = rw.GetUri()
			if rw.GetAuthority() != "" {
				ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
			}
		}
		dests := hr.GetRoute()
		if len(dests) > 1 {
			dests = slices.DeleteFunc(slices.Clone(dests), func(d *networkingv1.HTTPRouteDestination) bool { return d.GetWeight() <= 0 })
			if len(dests) == 0 {
				dests = hr.GetRoute()[:1]
			}
		}
		if len(dests) == 1 {
			d := dests[0]
			ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: b.destinationCluster(d.GetDestination(), vsNS, port)}
			// A single destination's header edits join the route's.
			add, remove := headerOps(d.GetHeaders().GetRequest())
			reqAdd, reqRemove = append(reqAdd, add...), append(reqRemove, remove...)
			add, remove = headerOps(d.GetHeaders().GetResponse())
			respAdd, respRemove = append(respAdd, add...), append(respRemove, remove...)
		} else {
			wc := &routev3.WeightedCluster{}
			for _, d := range dests {
				cw := &routev3.WeightedCluster_ClusterWeight{
					Name:   b.destinationCluster(d.GetDestination(), vsNS, port),
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
	return true
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

// retryPolicy converts Istio's retries: nil means Istio's default policy,
// attempts 0 disables retries (no policy: gRPC rejects num_retries 0).
// Numeric retryOn entries become retriable status codes.
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
			if n, err := strconv.ParseUint(part, 10, 32); err == nil {
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
	return rp
}

func redirectAction(r *networkingv1.HTTPRedirect) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{HostRedirect: r.GetAuthority(), PortRedirect: r.GetPort()}
	switch {
	case r.GetUri() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.GetUri()}
	case r.GetPrefixRewrite() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.GetPrefixRewrite()}
	}
	if r.GetScheme() != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.GetScheme()}
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
