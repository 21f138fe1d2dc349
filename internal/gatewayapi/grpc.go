package gatewayapi

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// grpcEntries converts a GRPCRoute: a method match is an HTTP/2 path match
// on /SERVICE/METHOD, as Istio converts it.
func (c *converter) grpcEntries(r *config.Resource, order *int) []entry {
	var out []entry
	for i, rule := range r.GatewayAPI.GRPCRoute.Spec.Rules {
		path := fmt.Sprintf("spec.rules[%d]", i)
		tmpl := c.grpcAction(r, path, rule)
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.GRPCRouteMatch{{}}
		}
		for j, m := range matches {
			*order++
			mr := &networkingv1.HTTPMatchRequest{}
			rk := rank{headers: len(m.Headers)}
			if len(m.Headers) > 0 {
				mr.Headers = map[string]*networkingv1.StringMatch{}
				for _, h := range m.Headers {
					mr.Headers[lower(string(h.Name))] = stringMatch(gwDeref(h.Type), h.Value)
				}
			}
			if mm := m.Method; mm != nil {
				mr.Uri, rk.path, rk.pathLen = grpcPath(mm)
			}
			hr := proto.Clone(tmpl).(*networkingv1.HTTPRoute)
			hr.Name = routeName(r, rule.Name, i, j)
			if mr.Uri != nil || mr.Headers != nil {
				hr.Match = []*networkingv1.HTTPMatchRequest{mr}
			}
			out = append(out, entry{rank: rk, order: *order, routes: []*networkingv1.HTTPRoute{hr}})
		}
	}
	return out
}

// grpcPath is a method match as a path match with its precedence.
func grpcPath(mm *gwv1.GRPCMethodMatch) (*networkingv1.StringMatch, int, int) {
	svc, method := gwDeref(mm.Service), gwDeref(mm.Method)
	if gwDeref(mm.Type) == string(gwv1.GRPCMethodMatchRegularExpression) {
		re := "/" + orDefault(svc, "[^/]+") + "/" + orDefault(method, "[^/]+")
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: re}}, 1, len(re)
	}
	switch {
	case svc != "" && method != "":
		p := "/" + svc + "/" + method
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: p}}, 3, len(p)
	case svc != "":
		p := "/" + svc + "/"
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: p}}, 2, len(p)
	default:
		re := "/[^/]+/" + regexpQuote(method)
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: re}}, 1, len(re)
	}
}

func (c *converter) grpcAction(r *config.Resource, path string, rule gwv1.GRPCRouteRule) *networkingv1.HTTPRoute {
	hr := &networkingv1.HTTPRoute{}
	for i, f := range rule.Filters {
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			hr.Headers = withHeaders(hr.Headers, f.RequestHeaderModifier, true)
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			hr.Headers = withHeaders(hr.Headers, f.ResponseHeaderModifier, false)
		case gwv1.GRPCRouteFilterRequestMirror:
			if m := c.mirror(r, fmt.Sprintf("%s.filters[%d].requestMirror", path, i), f.RequestMirror); m != nil {
				hr.Mirrors = append(hr.Mirrors, m)
			}
		}
	}
	for i, b := range rule.BackendRefs {
		d := c.destination(r, fmt.Sprintf("%s.backendRefs[%d]", path, i), b.BackendRef)
		if d == nil {
			continue
		}
		for _, f := range b.Filters {
			switch f.Type {
			case gwv1.GRPCRouteFilterRequestHeaderModifier:
				d.Headers = withHeaders(d.Headers, f.RequestHeaderModifier, true)
			case gwv1.GRPCRouteFilterResponseHeaderModifier:
				d.Headers = withHeaders(d.Headers, f.ResponseHeaderModifier, false)
			}
		}
		hr.Route = append(hr.Route, d)
	}
	c.finishDestinations(hr)
	return hr
}
