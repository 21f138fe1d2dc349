package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// validateGatewayAPI runs the checks the Gateway API CRDs make with OpenAPI
// and CEL rules (the subset Trellis relies on), with field paths.
func validateGatewayAPI(kind Kind, o *GatewayAPIObject) []fieldError {
	c := &checker{}
	switch kind {
	case KindGatewayClass:
		if o.GatewayClass.Spec.ControllerName == "" {
			c.add("spec.controllerName", "is required (for example istio.io/gateway-controller)")
		}
	case KindKubernetesGateway:
		c.gwGateway(&o.Gateway.Spec)
	case KindHTTPRoute:
		c.gwHTTPRoute(&o.HTTPRoute.Spec)
	case KindGRPCRoute:
		c.gwGRPCRoute(&o.GRPCRoute.Spec)
	case KindReferenceGrant:
		s := &o.ReferenceGrant.Spec
		if len(s.From) == 0 {
			c.add("spec.from", "is required: at least one entry")
		}
		if len(s.To) == 0 {
			c.add("spec.to", "is required: at least one entry")
		}
		for i, f := range s.From {
			if f.Kind == "" {
				c.add(fmt.Sprintf("spec.from[%d].kind", i), "is required")
			}
			if msg := checkDNSLabel(string(f.Namespace)); msg != "" {
				c.add(fmt.Sprintf("spec.from[%d].namespace", i), "%s", msg)
			}
		}
		for i, t := range s.To {
			if t.Kind == "" {
				c.add(fmt.Sprintf("spec.to[%d].kind", i), "is required")
			}
		}
	}
	return c.errs
}

var gatewayProtocols = map[gwv1.ProtocolType]bool{
	gwv1.HTTPProtocolType: true, gwv1.HTTPSProtocolType: true, gwv1.TLSProtocolType: true,
	gwv1.TCPProtocolType: true, gwv1.UDPProtocolType: true,
}

func (c *checker) gwGateway(s *gwv1.GatewaySpec) {
	if s.GatewayClassName == "" {
		c.add("spec.gatewayClassName", "is required (Trellis serves the classes istio and trellis)")
	}
	if len(s.Listeners) == 0 {
		c.add("spec.listeners", "is required: at least one listener")
	}
	if len(s.Listeners) > 64 {
		c.add("spec.listeners", "at most 64 listeners, got %d", len(s.Listeners))
	}
	names := map[gwv1.SectionName]int{}
	combos := map[string]int{}
	for i, l := range s.Listeners {
		p := fmt.Sprintf("spec.listeners[%d]", i)
		if msg := checkDNSLabel(string(l.Name)); msg != "" {
			c.add(p+".name", "%s", msg)
		} else if first, dup := names[l.Name]; dup {
			c.add(p+".name", "listener name %q is already used by spec.listeners[%d]", l.Name, first)
		} else {
			names[l.Name] = i
		}
		c.port(p+".port", uint32(max(l.Port, 0)))
		if !gatewayProtocols[l.Protocol] && !strings.Contains(string(l.Protocol), "/") {
			c.add(p+".protocol", "unknown protocol %q (want HTTP, HTTPS, TLS, TCP or UDP)", clip(string(l.Protocol)))
		}
		host := ""
		if l.Hostname != nil {
			host = string(*l.Hostname)
			if l.Protocol == gwv1.TCPProtocolType || l.Protocol == gwv1.UDPProtocolType {
				c.add(p+".hostname", "must not be set for protocol %s", l.Protocol)
			} else if msg := checkHost(host, false); msg != "" {
				c.add(p+".hostname", "%s", msg)
			}
		}
		key := fmt.Sprintf("%d/%s/%s", l.Port, l.Protocol, host)
		if first, dup := combos[key]; dup {
			c.add(p, "port, protocol and hostname are the same as spec.listeners[%d]", first)
		} else {
			combos[key] = i
		}
		c.gwListenerTLS(p, l)
		if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
			switch *ar.Namespaces.From {
			case gwv1.NamespacesFromAll, gwv1.NamespacesFromSame, gwv1.NamespacesFromNone:
			case gwv1.NamespacesFromSelector:
				if ar.Namespaces.Selector == nil {
					c.add(p+".allowedRoutes.namespaces.selector", "is required when from is Selector")
				}
			default:
				c.add(p+".allowedRoutes.namespaces.from", "unknown value %q (want All, Same, Selector or None)", clip(string(*ar.Namespaces.From)))
			}
		}
	}
	for i, a := range s.Addresses {
		p := fmt.Sprintf("spec.addresses[%d]", i)
		t := gwv1.IPAddressType
		if a.Type != nil {
			t = *a.Type
		}
		switch t {
		case gwv1.IPAddressType:
			if a.Value != "" && !isIP(a.Value) {
				c.add(p+".value", "%q is not an IP address", clip(a.Value))
			}
		case gwv1.HostnameAddressType:
			if msg := checkHost(a.Value, false); msg != "" {
				c.add(p+".value", "%s", msg)
			}
		case gwv1.NamedAddressType:
		default:
			c.add(p+".type", "unknown address type %q (want IPAddress, Hostname or NamedAddress)", clip(string(t)))
		}
	}
}

func (c *checker) gwListenerTLS(p string, l gwv1.Listener) {
	switch l.Protocol {
	case gwv1.HTTPSProtocolType, gwv1.TLSProtocolType:
		mode := gwv1.TLSModeTerminate
		if l.TLS != nil && l.TLS.Mode != nil {
			mode = *l.TLS.Mode
		}
		switch mode {
		case gwv1.TLSModeTerminate:
			if l.TLS == nil || len(l.TLS.CertificateRefs) == 0 {
				c.add(p+".tls.certificateRefs", "is required when TLS is terminated (mode Terminate)")
			}
		case gwv1.TLSModePassthrough:
			if l.Protocol == gwv1.HTTPSProtocolType {
				c.add(p+".tls.mode", "Passthrough is not allowed for protocol HTTPS (use TLS)")
			}
		default:
			c.add(p+".tls.mode", "unknown mode %q (want Terminate or Passthrough)", clip(string(mode)))
		}
		if l.TLS != nil {
			for j, ref := range l.TLS.CertificateRefs {
				rp := fmt.Sprintf("%s.tls.certificateRefs[%d]", p, j)
				if msg := checkDNSSubdomain(string(ref.Name)); msg != "" {
					c.add(rp+".name", "%s", msg)
				}
				if ref.Kind != nil && *ref.Kind != "Secret" {
					c.add(rp+".kind", "only Secret is supported, got %q", clip(string(*ref.Kind)))
				}
			}
		}
	default:
		if l.TLS != nil {
			c.add(p+".tls", "must not be set for protocol %s", l.Protocol)
		}
	}
}

// ---- routes ----

func (c *checker) gwParentRefs(refs []gwv1.ParentReference) {
	if len(refs) > 32 {
		c.add("spec.parentRefs", "at most 32 parentRefs, got %d", len(refs))
	}
	for i, r := range refs {
		p := fmt.Sprintf("spec.gwParentRefs[%d]", i)
		if msg := checkDNSSubdomain(string(r.Name)); msg != "" {
			c.add(p+".name", "%s", msg)
		}
		if r.Namespace != nil {
			if msg := checkDNSLabel(string(*r.Namespace)); msg != "" {
				c.add(p+".namespace", "%s", msg)
			}
		}
		if r.Port != nil {
			c.port(p+".port", uint32(max(*r.Port, 0)))
		}
	}
}

func (c *checker) gwHostnames(hosts []gwv1.Hostname) {
	for i, h := range hosts {
		if msg := checkHost(string(h), false); msg != "" {
			c.add(fmt.Sprintf("spec.hostnames[%d]", i), "%s", msg)
		}
	}
}

func (c *checker) gwHTTPRoute(s *gwv1.HTTPRouteSpec) {
	c.gwParentRefs(s.ParentRefs)
	c.gwHostnames(s.Hostnames)
	if len(s.Rules) > 16 {
		c.add("spec.rules", "at most 16 rules, got %d", len(s.Rules))
	}
	for i, r := range s.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		prefixOnly := len(r.Matches) > 0
		for j, m := range r.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			if !c.gwPathMatch(mp+".path", m.Path) {
				prefixOnly = false
			}
			gwHeaderMatches(c, mp+".headers", len(m.Headers), func(k int) (string, *string, string) {
				return string(m.Headers[k].Name), (*string)(m.Headers[k].Type), m.Headers[k].Value
			})
			gwHeaderMatches(c, mp+".queryParams", len(m.QueryParams), func(k int) (string, *string, string) {
				return string(m.QueryParams[k].Name), (*string)(m.QueryParams[k].Type), m.QueryParams[k].Value
			})
			if m.Method != nil && !gwHTTPMethods[string(*m.Method)] {
				c.add(mp+".method", "unknown method %q (want GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE or PATCH)", clip(string(*m.Method)))
			}
		}
		if len(r.Matches) == 0 {
			prefixOnly = true // the default match is PathPrefix /
		}
		c.gwHTTPFilters(p+".filters", r.Filters, prefixOnly, true)
		for j, b := range r.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			c.gwBackendRef(bp, b.BackendRef)
			c.gwHTTPFilters(bp+".filters", b.Filters, prefixOnly, false)
		}
		if t := r.Timeouts; t != nil {
			req, reqOK := c.gwDuration(p+".timeouts.request", t.Request)
			be, beOK := c.gwDuration(p+".timeouts.backendRequest", t.BackendRequest)
			if reqOK && beOK && t.Request != nil && t.BackendRequest != nil && req != 0 && (be == 0 || be > req) {
				c.add(p+".timeouts.backendRequest", "must not be longer than timeouts.request (%s)", *t.Request)
			}
		}
		if rt := r.Retry; rt != nil {
			for k, code := range rt.Codes {
				if code < 400 || code > 599 {
					c.add(fmt.Sprintf("%s.retry.codes[%d]", p, k), "must be a status code from 400 to 599, got %d", code)
				}
			}
			if rt.Attempts != nil && *rt.Attempts < 0 {
				c.add(p+".retry.attempts", "must not be negative, got %d", *rt.Attempts)
			}
			c.gwDuration(p+".retry.backoff", rt.Backoff)
		}
	}
}

var gwHTTPMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}

// pathMatch checks a path match and reports whether it is a PathPrefix one
// (the default).
func (c *checker) gwPathMatch(p string, m *gwv1.HTTPPathMatch) bool {
	if m == nil {
		return true
	}
	t := gwv1.PathMatchPathPrefix
	if m.Type != nil {
		t = *m.Type
	}
	v := "/"
	if m.Value != nil {
		v = *m.Value
	}
	switch t {
	case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
		if !strings.HasPrefix(v, "/") {
			c.add(p+".value", "must start with \"/\", got %q", clip(v))
		} else if strings.Contains(v, "//") || strings.Contains(v, "/./") || strings.Contains(v, "/../") ||
			strings.HasSuffix(v, "/..") || strings.HasSuffix(v, "/.") || strings.ContainsAny(v, "?#") {
			c.add(p+".value", "must be a normalised path without \"//\", \"/./\", \"/../\", \"?\" or \"#\", got %q", clip(v))
		}
	case gwv1.PathMatchRegularExpression:
		c.gwRegex(p+".value", v)
	default:
		c.add(p+".type", "unknown path match type %q (want Exact, PathPrefix or RegularExpression)", clip(string(t)))
	}
	return t == gwv1.PathMatchPathPrefix
}

func (c *checker) gwRegex(p, re string) {
	if _, err := regexp.Compile(re); err != nil {
		c.add(p, "invalid regular expression (RE2): %v", err)
	}
}

// headerMatches checks header or query parameter matches: names valid and
// unique (case-insensitively for headers), types known, regexes compile.
func gwHeaderMatches(c *checker, p string, n int, at func(int) (name string, typ *string, value string)) {
	seen := map[string]int{}
	for k := range n {
		name, typ, value := at(k)
		hp := fmt.Sprintf("%s[%d]", p, k)
		if msg := gwCheckHeaderName(name); msg != "" {
			c.add(hp+".name", "%s", msg)
		}
		key := name
		if !strings.HasSuffix(p, "queryParams") {
			key = strings.ToLower(name)
		}
		if first, dup := seen[key]; dup {
			c.add(hp+".name", "%q is already matched by %s[%d]", clip(name), p, first)
		}
		seen[key] = k
		t := "Exact"
		if typ != nil {
			t = *typ
		}
		switch t {
		case "Exact":
		case "RegularExpression":
			c.gwRegex(hp+".value", value)
		default:
			c.add(hp+".type", "unknown match type %q (want Exact or RegularExpression)", clip(t))
		}
	}
}

// checkHeaderName checks an HTTP header name token (RFC 7230).
func gwCheckHeaderName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch <= ' ' || ch >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", ch) >= 0 {
			return fmt.Sprintf("%q is not a valid header name", clip(s))
		}
	}
	return ""
}

// httpFilters checks route or backend filters. prefixOnly says whether every
// match of the rule is a PathPrefix match (ReplacePrefixMatch needs it).
func (c *checker) gwHTTPFilters(p string, fs []gwv1.HTTPRouteFilter, prefixOnly, ruleLevel bool) {
	count := map[gwv1.HTTPRouteFilterType]int{}
	for i, f := range fs {
		fp := fmt.Sprintf("%s[%d]", p, i)
		set := map[gwv1.HTTPRouteFilterType]bool{
			gwv1.HTTPRouteFilterRequestHeaderModifier:  f.RequestHeaderModifier != nil,
			gwv1.HTTPRouteFilterResponseHeaderModifier: f.ResponseHeaderModifier != nil,
			gwv1.HTTPRouteFilterRequestMirror:          f.RequestMirror != nil,
			gwv1.HTTPRouteFilterRequestRedirect:        f.RequestRedirect != nil,
			gwv1.HTTPRouteFilterURLRewrite:             f.URLRewrite != nil,
			gwv1.HTTPRouteFilterCORS:                   f.CORS != nil,
			gwv1.HTTPRouteFilterExternalAuth:           f.ExternalAuth != nil,
			gwv1.HTTPRouteFilterExtensionRef:           f.ExtensionRef != nil,
		}
		if _, known := set[f.Type]; !known {
			c.add(fp+".type", "unknown filter type %q (want RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite or RequestMirror)", clip(string(f.Type)))
			continue
		}
		for t, isSet := range set {
			if isSet && t != f.Type {
				c.add(fp, "only %s may be set for a filter of type %s", gwLowerFirst(string(f.Type)), f.Type)
			}
		}
		field := fp + "." + gwLowerFirst(string(f.Type))
		if f.Type == gwv1.HTTPRouteFilterURLRewrite {
			field = fp + ".urlRewrite"
		} else if f.Type == gwv1.HTTPRouteFilterCORS {
			field = fp + ".cors"
		}
		if !set[f.Type] {
			c.add(field, "is required for a filter of type %s", f.Type)
			continue
		}
		count[f.Type]++
		if f.Type != gwv1.HTTPRouteFilterRequestMirror && f.Type != gwv1.HTTPRouteFilterExtensionRef && count[f.Type] > 1 {
			c.add(fp+".type", "a %s filter may appear only once", f.Type)
		}
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			c.gwHeaderFilter(field, f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			c.gwHeaderFilter(field, f.ResponseHeaderModifier)
		case gwv1.HTTPRouteFilterRequestMirror:
			c.gwMirrorFilter(field, f.RequestMirror)
		case gwv1.HTTPRouteFilterRequestRedirect:
			if !ruleLevel {
				c.add(fp+".type", "RequestRedirect is allowed only on rules, not on backendRefs")
			}
			r := f.RequestRedirect
			if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
				c.add(field+".scheme", "must be http or https, got %q", clip(*r.Scheme))
			}
			if r.Hostname != nil {
				if msg := checkHost(string(*r.Hostname), false); msg != "" || strings.Contains(string(*r.Hostname), "*") {
					c.add(field+".hostname", "must be a hostname without wildcard, got %q", clip(string(*r.Hostname)))
				}
			}
			if r.Port != nil {
				c.port(field+".port", uint32(max(*r.Port, 0)))
			}
			if r.StatusCode != nil && !gwRedirectCodes[*r.StatusCode] {
				c.add(field+".statusCode", "must be 301, 302, 303, 307 or 308, got %d", *r.StatusCode)
			}
			c.gwPathModifier(field+".path", r.Path, prefixOnly)
		case gwv1.HTTPRouteFilterURLRewrite:
			if !ruleLevel {
				c.add(fp+".type", "URLRewrite is allowed only on rules, not on backendRefs")
			}
			r := f.URLRewrite
			if r.Hostname != nil {
				if msg := checkHost(string(*r.Hostname), false); msg != "" || strings.Contains(string(*r.Hostname), "*") {
					c.add(field+".hostname", "must be a hostname without wildcard, got %q", clip(string(*r.Hostname)))
				}
			}
			c.gwPathModifier(field+".path", r.Path, prefixOnly)
		case gwv1.HTTPRouteFilterCORS:
			for k, o := range f.CORS.AllowOrigins {
				if o == "" {
					c.add(fmt.Sprintf("%s.allowOrigins[%d]", field, k), "must not be empty")
				}
			}
		case gwv1.HTTPRouteFilterExternalAuth, gwv1.HTTPRouteFilterExtensionRef:
			c.add(fp+".type", "filter type %s is not supported by Trellis", f.Type)
		}
	}
	if count[gwv1.HTTPRouteFilterRequestRedirect] > 0 && count[gwv1.HTTPRouteFilterURLRewrite] > 0 {
		c.add(p, "RequestRedirect and URLRewrite cannot be used together")
	}
}

var gwRedirectCodes = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

func gwLowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func (c *checker) gwHeaderFilter(p string, f *gwv1.HTTPHeaderFilter) {
	seen := map[string]bool{}
	check := func(fp, name string) {
		if msg := gwCheckHeaderName(name); msg != "" {
			c.add(fp, "%s", msg)
			return
		}
		if seen[strings.ToLower(name)] {
			c.add(fp, "header %q is modified more than once in this filter", clip(name))
		}
		seen[strings.ToLower(name)] = true
	}
	for i, h := range f.Set {
		check(fmt.Sprintf("%s.set[%d].name", p, i), string(h.Name))
	}
	for i, h := range f.Add {
		check(fmt.Sprintf("%s.add[%d].name", p, i), string(h.Name))
	}
	for i, h := range f.Remove {
		check(fmt.Sprintf("%s.remove[%d]", p, i), h)
	}
}

func (c *checker) gwMirrorFilter(p string, m *gwv1.HTTPRequestMirrorFilter) {
	c.gwBackendObjectRef(p+".backendRef", m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		c.add(p, "only one of percent and fraction may be set")
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		c.add(p+".percent", "must be between 0 and 100, got %d", *m.Percent)
	}
	if f := m.Fraction; f != nil {
		den := int32(100)
		if f.Denominator != nil {
			den = *f.Denominator
		}
		if den < 1 || f.Numerator < 0 || f.Numerator > den {
			c.add(p+".fraction", "numerator must be between 0 and the denominator (at least 1), got %d/%d", f.Numerator, den)
		}
	}
}

func (c *checker) gwPathModifier(p string, m *gwv1.HTTPPathModifier, prefixOnly bool) {
	if m == nil {
		return
	}
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil || m.ReplacePrefixMatch != nil {
			c.add(p+".replaceFullPath", "is required, alone, when type is ReplaceFullPath")
		} else if !strings.HasPrefix(*m.ReplaceFullPath, "/") {
			c.add(p+".replaceFullPath", "must start with \"/\", got %q", clip(*m.ReplaceFullPath))
		}
	case gwv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil || m.ReplaceFullPath != nil {
			c.add(p+".replacePrefixMatch", "is required, alone, when type is ReplacePrefixMatch")
		} else if !strings.HasPrefix(*m.ReplacePrefixMatch, "/") {
			c.add(p+".replacePrefixMatch", "must start with \"/\", got %q", clip(*m.ReplacePrefixMatch))
		}
		if !prefixOnly {
			c.add(p+".type", "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match")
		}
	default:
		c.add(p+".type", "unknown path modifier %q (want ReplaceFullPath or ReplacePrefixMatch)", clip(string(m.Type)))
	}
}

func (c *checker) gwBackendRef(p string, b gwv1.BackendRef) {
	c.gwBackendObjectRef(p, b.BackendObjectReference)
	if b.Weight != nil && (*b.Weight < 0 || *b.Weight > 1_000_000) {
		c.add(p+".weight", "must be between 0 and 1000000, got %d", *b.Weight)
	}
}

func (c *checker) gwBackendObjectRef(p string, b gwv1.BackendObjectReference) {
	if msg := checkDNSSubdomain(string(b.Name)); msg != "" {
		c.add(p+".name", "%s", msg)
	}
	if b.Namespace != nil {
		if msg := checkDNSLabel(string(*b.Namespace)); msg != "" {
			c.add(p+".namespace", "%s", msg)
		}
	}
	isService := (b.Kind == nil || *b.Kind == "Service") && (b.Group == nil || *b.Group == "")
	if b.Port == nil {
		if isService {
			c.add(p+".port", "is required for a Service backend")
		}
	} else {
		c.port(p+".port", uint32(max(*b.Port, 0)))
	}
}

// gatewayDuration checks an optional Gateway API duration and returns it.
func (c *checker) gwDuration(p string, d *gwv1.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, true
	}
	v, err := ParseGatewayDuration(string(*d))
	if err != nil {
		c.add(p, "%v", err)
		return 0, false
	}
	return v, true
}

func (c *checker) gwGRPCRoute(s *gwv1.GRPCRouteSpec) {
	c.gwParentRefs(s.ParentRefs)
	c.gwHostnames(s.Hostnames)
	if len(s.Rules) > 16 {
		c.add("spec.rules", "at most 16 rules, got %d", len(s.Rules))
	}
	for i, r := range s.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		for j, m := range r.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			if mm := m.Method; mm != nil {
				t := gwv1.GRPCMethodMatchExact
				if mm.Type != nil {
					t = *mm.Type
				}
				svc, method := gwDeref(mm.Service), gwDeref(mm.Method)
				switch t {
				case gwv1.GRPCMethodMatchExact:
					if svc == "" && method == "" {
						c.add(mp+".method", "one of service and method is required")
					}
					if strings.Contains(svc, "/") {
						c.add(mp+".method.service", "must not contain \"/\", got %q", clip(svc))
					}
					if strings.Contains(method, "/") {
						c.add(mp+".method.method", "must not contain \"/\", got %q", clip(method))
					}
				case gwv1.GRPCMethodMatchRegularExpression:
					c.gwRegex(mp+".method.service", svc)
					c.gwRegex(mp+".method.method", method)
				default:
					c.add(mp+".method.type", "unknown match type %q (want Exact or RegularExpression)", clip(string(t)))
				}
			}
			gwHeaderMatches(c, mp+".headers", len(m.Headers), func(k int) (string, *string, string) {
				return string(m.Headers[k].Name), (*string)(m.Headers[k].Type), m.Headers[k].Value
			})
		}
		c.gwGRPCFilters(p+".filters", r.Filters)
		for j, b := range r.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			c.gwBackendRef(bp, b.BackendRef)
			c.gwGRPCFilters(bp+".filters", b.Filters)
		}
	}
}

func (c *checker) gwGRPCFilters(p string, fs []gwv1.GRPCRouteFilter) {
	for i, f := range fs {
		fp := fmt.Sprintf("%s[%d]", p, i)
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			if f.RequestHeaderModifier == nil {
				c.add(fp+".requestHeaderModifier", "is required for a filter of type %s", f.Type)
				continue
			}
			c.gwHeaderFilter(fp+".requestHeaderModifier", f.RequestHeaderModifier)
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			if f.ResponseHeaderModifier == nil {
				c.add(fp+".responseHeaderModifier", "is required for a filter of type %s", f.Type)
				continue
			}
			c.gwHeaderFilter(fp+".responseHeaderModifier", f.ResponseHeaderModifier)
		case gwv1.GRPCRouteFilterRequestMirror:
			if f.RequestMirror == nil {
				c.add(fp+".requestMirror", "is required for a filter of type %s", f.Type)
				continue
			}
			c.gwMirrorFilter(fp+".requestMirror", f.RequestMirror)
		case gwv1.GRPCRouteFilterExtensionRef:
			c.add(fp+".type", "filter type ExtensionRef is not supported by Trellis")
		default:
			c.add(fp+".type", "unknown filter type %q (want RequestHeaderModifier, ResponseHeaderModifier or RequestMirror)", clip(string(f.Type)))
		}
	}
}

func gwDeref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
