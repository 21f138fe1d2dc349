package config

import (
	"fmt"
	"regexp"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
	"istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name for sidecars.
const meshGateway = "mesh"

func (c *checker) virtualService(vs *networkingv1.VirtualService) {
	appliesToMesh := len(vs.GetGateways()) == 0
	for i, g := range vs.GetGateways() {
		if g == meshGateway {
			appliesToMesh = true
			continue
		}
		c.gatewayRef(fmt.Sprintf("spec.gateways[%d]", i), g)
	}
	if len(vs.GetHosts()) == 0 {
		c.delegateVirtualService(vs) // validate_delegate.go
	}
	for i, h := range vs.GetHosts() {
		path := fmt.Sprintf("spec.hosts[%d]", i)
		if h == "*" && appliesToMesh {
			c.add(path, "host \"*\" is not allowed for a VirtualService that applies to the mesh (set gateways)")
			continue
		}
		if isIP(h) {
			continue
		}
		if msg := checkHost(h, true); msg != "" {
			c.add(path, "%s", msg)
		}
	}
	if len(vs.GetHttp()) == 0 && len(vs.GetTcp()) == 0 && len(vs.GetTls()) == 0 {
		c.add("spec", "at least one of http, tcp or tls routes is required")
	}
	for i, r := range vs.GetHttp() {
		c.httpRoute(fmt.Sprintf("spec.http[%d]", i), r)
	}
	for i, r := range vs.GetTcp() {
		path := fmt.Sprintf("spec.tcp[%d]", i)
		for j, m := range r.GetMatch() {
			mpath := fmt.Sprintf("%s.match[%d]", path, j)
			c.optionalPort(mpath+".port", m.GetPort())
			c.subnets(mpath+".destinationSubnets", m.GetDestinationSubnets())
		}
		c.routeDestinations(path, r.GetRoute())
	}
	for i, r := range vs.GetTls() {
		path := fmt.Sprintf("spec.tls[%d]", i)
		if len(r.GetMatch()) == 0 {
			c.add(path+".match", "a TLS route needs at least one match")
		}
		for j, m := range r.GetMatch() {
			mpath := fmt.Sprintf("%s.match[%d]", path, j)
			if len(m.GetSniHosts()) == 0 {
				c.add(mpath+".sniHosts", "at least one SNI host is required")
			}
			for k, h := range m.GetSniHosts() {
				if msg := checkHost(h, true); msg != "" {
					c.add(fmt.Sprintf("%s.sniHosts[%d]", mpath, k), "%s", msg)
				}
			}
			c.optionalPort(mpath+".port", m.GetPort())
			c.subnets(mpath+".destinationSubnets", m.GetDestinationSubnets())
		}
		c.routeDestinations(path, r.GetRoute())
	}
	c.exportTo("spec.exportTo", vs.GetExportTo())
}

// gatewayRef checks "name" or "namespace/name".
func (c *checker) gatewayRef(path, g string) {
	ns, name, found := strings.Cut(g, "/")
	if !found {
		name, ns = ns, ""
	}
	if ns != "" {
		if msg := checkDNSLabel(ns); msg != "" {
			c.add(path, "gateway %q: namespace %s", clip(g), msg)
			return
		}
	}
	if msg := checkDNSSubdomain(name); msg != "" {
		c.add(path, "gateway %q: name %s", clip(g), msg)
	}
}

func (c *checker) subnets(path string, subnets []string) {
	for i, s := range subnets {
		if !isIPOrCIDR(s) {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%q is not an IP address or CIDR", clip(s))
		}
	}
}

func (c *checker) httpRoute(path string, r *networkingv1.HTTPRoute) {
	hasRoute := len(r.GetRoute()) > 0
	switch {
	case !hasRoute && r.GetRedirect() == nil && r.GetDirectResponse() == nil && r.GetDelegate() == nil:
		c.add(path, "one of route, redirect, directResponse or delegate is required")
	case r.GetDelegate() != nil && (hasRoute || r.GetRedirect() != nil || r.GetDirectResponse() != nil):
		c.add(path+".delegate", "delegate cannot be combined with route, redirect or directResponse")
	case hasRoute && r.GetRedirect() != nil:
		c.add(path+".redirect", "route and redirect cannot both be set")
	case hasRoute && r.GetDirectResponse() != nil:
		c.add(path+".directResponse", "route and directResponse cannot both be set")
	case r.GetRedirect() != nil && r.GetDirectResponse() != nil:
		c.add(path+".directResponse", "redirect and directResponse cannot both be set")
	}
	if r.GetRewrite() != nil && r.GetRedirect() != nil {
		c.add(path+".rewrite", "rewrite and redirect cannot both be set")
	}
	for i, m := range r.GetMatch() {
		c.httpMatch(fmt.Sprintf("%s.match[%d]", path, i), m)
	}
	c.httpRouteDestinations(path, r.GetRoute())
	if rd := r.GetRedirect(); rd != nil {
		switch rd.GetRedirectCode() {
		case 0, 301, 302, 303, 307, 308:
		default:
			c.add(path+".redirect.redirectCode", "redirect code must be 301, 302, 303, 307 or 308, got %d", rd.GetRedirectCode())
		}
		c.optionalPort(path+".redirect.port", rd.GetPort())
		if rd.GetUri() == "" && rd.GetAuthority() == "" && rd.GetScheme() == "" && rd.GetPort() == 0 &&
			rd.GetPrefixRewrite() == "" && rd.GetDerivePort() == 0 {
			c.add(path+".redirect", "a redirect must change at least one of uri, authority, scheme, port or prefix")
		}
	}
	if dr := r.GetDirectResponse(); dr != nil {
		if s := dr.GetStatus(); s < 200 || s > 599 {
			c.add(path+".directResponse.status", "status must be between 200 and 599, got %d", s)
		}
	}
	if rw := r.GetRewrite(); rw != nil {
		if rr := rw.GetUriRegexRewrite(); rr != nil {
			c.regex(path+".rewrite.uriRegexRewrite.match", rr.GetMatch())
		}
		if rr := rw.GetUriRegexRewrite(); rr != nil && rr.GetMatch() == "" {
			c.add(path+".rewrite.uriRegexRewrite.match", "match is required")
		}
		if rw.GetUri() != "" && rw.GetUriRegexRewrite() != nil {
			c.add(path+".rewrite", "uri and uriRegexRewrite cannot both be set")
		}
	}
	c.nonNegativeDuration(path+".timeout", r.GetTimeout())
	if rt := r.GetRetries(); rt != nil {
		if rt.GetAttempts() < 0 {
			c.add(path+".retries.attempts", "must not be negative, got %d", rt.GetAttempts())
		}
		c.nonNegativeDuration(path+".retries.perTryTimeout", rt.GetPerTryTimeout())
		c.nonNegativeDuration(path+".retries.backoff", rt.GetBackoff())
		c.retryOn(path+".retries.retryOn", rt.GetRetryOn()) // validate_delegate.go
	}
	if f := r.GetFault(); f != nil {
		if f.GetDelay() == nil && f.GetAbort() == nil {
			c.add(path+".fault", "a fault needs delay or abort")
		}
		if d := f.GetDelay(); d != nil {
			c.percent(path+".fault.delay.percentage.value", d.GetPercentage().GetValue())
			c.nonNegativeDuration(path+".fault.delay.fixedDelay", d.GetFixedDelay())
			if d.GetFixedDelay() == nil {
				c.add(path+".fault.delay.fixedDelay", "fixedDelay is required (exponentialDelay is not supported)")
			}
		}
		if a := f.GetAbort(); a != nil {
			c.percent(path+".fault.abort.percentage.value", a.GetPercentage().GetValue())
			switch e := a.GetErrorType().(type) {
			case *v1alpha3.HTTPFaultInjection_Abort_HttpStatus:
				if e.HttpStatus < 200 || e.HttpStatus > 599 {
					c.add(path+".fault.abort.httpStatus", "status must be between 200 and 599, got %d", e.HttpStatus)
				}
			case *v1alpha3.HTTPFaultInjection_Abort_GrpcStatus:
				if !isGRPCStatus(e.GrpcStatus) {
					c.add(path+".fault.abort.grpcStatus", "%q is not a gRPC status name (for example UNAVAILABLE)", clip(e.GrpcStatus))
				}
			default:
				c.add(path+".fault.abort", "an abort needs httpStatus or grpcStatus")
			}
		}
	}
	if m := r.GetMirror(); m != nil {
		c.destination(path+".mirror", m)
		if len(r.GetMirrors()) > 0 {
			c.add(path+".mirrors", "mirror and mirrors cannot both be set")
		}
	}
	if d := r.GetDelegate(); d != nil {
		if msg := checkDNSSubdomain(d.GetName()); msg != "" {
			c.add(path+".delegate.name", "delegate name %s", msg)
		}
		if ns := d.GetNamespace(); ns != "" {
			if msg := checkDNSLabel(ns); msg != "" {
				c.add(path+".delegate.namespace", "delegate namespace %s", msg)
			}
		}
	}
	if p := r.GetMirrorPercentage(); p != nil {
		c.percent(path+".mirrorPercentage.value", p.GetValue())
	}
	for i, m := range r.GetMirrors() {
		mpath := fmt.Sprintf("%s.mirrors[%d]", path, i)
		if m.GetDestination() == nil {
			c.add(mpath+".destination", "destination is required")
		} else {
			c.destination(mpath+".destination", m.GetDestination())
		}
		if p := m.GetPercentage(); p != nil {
			c.percent(mpath+".percentage.value", p.GetValue())
		}
	}
	if cp := r.GetCorsPolicy(); cp != nil {
		for i, o := range cp.GetAllowOrigins() {
			c.stringMatch(fmt.Sprintf("%s.corsPolicy.allowOrigins[%d]", path, i), o)
		}
	}
}

func (c *checker) percent(path string, v float64) {
	if v < 0 || v > 100 {
		c.add(path, "percentage must be between 0 and 100, got %g", v)
	}
}

func (c *checker) httpMatch(path string, m *networkingv1.HTTPMatchRequest) {
	c.stringMatch(path+".uri", m.GetUri())
	c.stringMatch(path+".scheme", m.GetScheme())
	c.stringMatch(path+".method", m.GetMethod())
	c.stringMatch(path+".authority", m.GetAuthority())
	for _, k := range sortedKeys(m.GetHeaders()) {
		c.headerName(path+".headers["+k+"]", k)
		c.stringMatch(path+".headers["+k+"]", m.GetHeaders()[k])
	}
	for _, k := range sortedKeys(m.GetWithoutHeaders()) {
		c.headerName(path+".withoutHeaders["+k+"]", k)
		c.stringMatch(path+".withoutHeaders["+k+"]", m.GetWithoutHeaders()[k])
	}
	for _, k := range sortedKeys(m.GetQueryParams()) {
		c.stringMatch(path+".queryParams["+k+"]", m.GetQueryParams()[k])
	}
	c.optionalPort(path+".port", m.GetPort())
	c.labels(path+".sourceLabels", m.GetSourceLabels())
}

func (c *checker) headerName(path, name string) {
	if name == "" {
		c.add(path, "header name must not be empty")
		return
	}
	if strings.ToLower(name) != name {
		c.add(path, "header name %q must be lower case", clip(name))
	}
}

func (c *checker) stringMatch(path string, m *networkingv1.StringMatch) {
	if m == nil {
		return
	}
	if re, ok := m.GetMatchType().(*networkingv1.StringMatch_Regex); ok {
		c.regex(path+".regex", re.Regex)
	}
}

// regex checks that an expression compiles as RE2 (Go's regexp is RE2
// syntax, the dialect Envoy's safe_regex uses).
func (c *checker) regex(path, expr string) {
	if _, err := regexp.Compile(expr); err != nil {
		c.add(path, "invalid regular expression: %v", err)
	}
}

func (c *checker) destination(path string, d *networkingv1.Destination) {
	if d.GetHost() == "" {
		c.add(path+".host", "destination host is required")
	} else if strings.Contains(d.GetHost(), "*") {
		c.add(path+".host", "destination host %q must not contain a wildcard", clip(d.GetHost()))
	} else if msg := checkHost(d.GetHost(), false); msg != "" {
		c.add(path+".host", "%s", msg)
	}
	if s := d.GetSubset(); s != "" {
		if msg := checkDNSLabel(s); msg != "" {
			c.add(path+".subset", "subset %s", msg)
		}
	}
	if p := d.GetPort(); p != nil {
		c.port(path+".port.number", p.GetNumber())
	}
}

// httpRouteDestinations applies the weight rule: with more than one
// destination the weights must add up to 100; a single destination may omit
// its weight.
func (c *checker) httpRouteDestinations(path string, routes []*networkingv1.HTTPRouteDestination) {
	weights := make([]int32, len(routes))
	for i, rd := range routes {
		rpath := fmt.Sprintf("%s.route[%d]", path, i)
		if rd.GetDestination() == nil {
			c.add(rpath+".destination", "destination is required")
		} else {
			c.destination(rpath+".destination", rd.GetDestination())
		}
		weights[i] = rd.GetWeight()
	}
	c.weights(path, weights)
}

func (c *checker) routeDestinations(path string, routes []*networkingv1.RouteDestination) {
	if len(routes) == 0 {
		c.add(path+".route", "at least one route destination is required")
	}
	weights := make([]int32, len(routes))
	for i, rd := range routes {
		rpath := fmt.Sprintf("%s.route[%d]", path, i)
		if rd.GetDestination() == nil {
			c.add(rpath+".destination", "destination is required")
		} else {
			c.destination(rpath+".destination", rd.GetDestination())
		}
		weights[i] = rd.GetWeight()
	}
	c.weights(path, weights)
}

func (c *checker) weights(path string, weights []int32) {
	var sum int64
	bad := false
	for i, w := range weights {
		if w < 0 || w > 100 {
			c.add(fmt.Sprintf("%s.route[%d].weight", path, i), "weight must be between 0 and 100, got %d", w)
			bad = true
		}
		sum += int64(w)
	}
	if len(weights) > 1 && !bad && sum != 100 {
		c.add(fmt.Sprintf("%s.route[%d].weight", path, len(weights)-1), "weights sum to %d, must sum to 100", sum)
	}
}
