package gatewayapi

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// routes converts every HTTPRoute and GRPCRoute, in creation order (then
// namespace and name), which breaks precedence ties as the Gateway API says.
func (c *converter) routes() {
	var all []*config.Resource
	all = append(all, c.set.List(config.KindHTTPRoute)...)
	all = append(all, c.set.List(config.KindGRPCRoute)...)
	created := func(r *config.Resource) time.Time {
		if r.GatewayAPI.HTTPRoute != nil {
			return r.GatewayAPI.HTTPRoute.CreationTimestamp.Time
		}
		return r.GatewayAPI.GRPCRoute.CreationTimestamp.Time
	}
	slices.SortStableFunc(all, func(a, b *config.Resource) int {
		return cmp.Or(created(a).Compare(created(b)), cmp.Compare(a.Meta.Namespace, b.Meta.Namespace), cmp.Compare(a.Meta.Name, b.Meta.Name))
	})
	order := 0
	for _, r := range all {
		var rt route
		var entries []entry
		if hr := r.GatewayAPI.HTTPRoute; hr != nil {
			rt = route{r: r, kind: "HTTPRoute", parents: hr.Spec.ParentRefs, hostnames: hr.Spec.Hostnames}
			atts := c.attach(rt)
			if len(atts) == 0 {
				continue
			}
			entries = c.httpEntries(r, &order)
			c.add(rt, atts, entries)
			continue
		}
		gr := r.GatewayAPI.GRPCRoute
		rt = route{r: r, kind: "GRPCRoute", parents: gr.Spec.ParentRefs, hostnames: gr.Spec.Hostnames}
		atts := c.attach(rt)
		if len(atts) == 0 {
			continue
		}
		entries = c.grpcEntries(r, &order)
		c.add(rt, atts, entries)
	}
}

// ---- HTTPRoute ----

func (c *converter) httpEntries(r *config.Resource, order *int) []entry {
	var out []entry
	for i, rule := range r.GatewayAPI.HTTPRoute.Spec.Rules {
		path := fmt.Sprintf("spec.rules[%d]", i)
		tmpl, prefixRepl := c.httpAction(r, path, rule)
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}} // the default: PathPrefix /
		}
		for j, m := range matches {
			*order++
			name := routeName(r, rule.Name, i, j)
			e := entry{rank: httpRank(m), order: *order}
			base := &networkingv1.HTTPMatchRequest{Headers: headerMatches(m.Headers), QueryParams: queryMatches(m.QueryParams)}
			if m.Method != nil {
				base.Method = &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: string(*m.Method)}}
			}
			for _, v := range pathVariants(m.Path) {
				mr := proto.Clone(base).(*networkingv1.HTTPMatchRequest)
				mr.Uri = v.uri
				if prefixRepl == nil && len(e.routes) == 1 {
					e.routes[0].Match = append(e.routes[0].Match, mr) // same action: one route, ORed matches
					continue
				}
				hr := proto.Clone(tmpl).(*networkingv1.HTTPRoute)
				hr.Name = name
				hr.Match = []*networkingv1.HTTPMatchRequest{mr}
				if prefixRepl != nil {
					prefixRepl(hr, v)
				}
				e.routes = append(e.routes, hr)
			}
			out = append(out, e)
		}
	}
	return out
}

func routeName(r *config.Resource, ruleName *gwv1.SectionName, i, j int) string {
	if ruleName != nil {
		return fmt.Sprintf("%s.%s.%s.%d", r.Meta.Namespace, r.Meta.Name, *ruleName, j)
	}
	return fmt.Sprintf("%s.%s.%d.%d", r.Meta.Namespace, r.Meta.Name, i, j)
}

// pathVariant is one Istio uri match for a Gateway API path match, with the
// replacement a ReplacePrefixMatch must use for it.
type pathVariant struct {
	uri       *networkingv1.StringMatch
	exactPart bool // the "/foo" half of a PathPrefix "/foo" (vs the "/foo/" half)
}

// pathVariants expresses a path match. PathPrefix matches whole segments, so
// "/foo" becomes exact "/foo" plus prefix "/foo/" (see the package doc).
func pathVariants(p *gwv1.HTTPPathMatch) []pathVariant {
	t, v := gwv1.PathMatchPathPrefix, "/"
	if p != nil {
		if p.Type != nil {
			t = *p.Type
		}
		if p.Value != nil {
			v = *p.Value
		}
	}
	switch t {
	case gwv1.PathMatchExact:
		return []pathVariant{{uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: v}}, exactPart: true}}
	case gwv1.PathMatchRegularExpression:
		return []pathVariant{{uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: v}}}}
	}
	v = strings.TrimRight(v, "/")
	if v == "" {
		return []pathVariant{{uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/"}}}}
	}
	return []pathVariant{
		{uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: v}}, exactPart: true},
		{uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: v + "/"}}},
	}
}

func httpRank(m gwv1.HTTPRouteMatch) rank {
	rk := rank{path: 2, pathLen: 1, method: m.Method != nil, headers: len(m.Headers), query: len(m.QueryParams)}
	if p := m.Path; p != nil {
		v := cmp.Or(gwDeref(p.Value), "/")
		rk.pathLen = len(v)
		switch gwv1.PathMatchType(gwDeref(p.Type)) {
		case gwv1.PathMatchExact:
			rk.path = 3
		case gwv1.PathMatchRegularExpression:
			rk.path = 1
		}
	}
	return rk
}

func headerMatches(hs []gwv1.HTTPHeaderMatch) map[string]*networkingv1.StringMatch {
	if len(hs) == 0 {
		return nil
	}
	out := make(map[string]*networkingv1.StringMatch, len(hs))
	for _, h := range hs {
		out[strings.ToLower(string(h.Name))] = stringMatch(gwDeref(h.Type), h.Value)
	}
	return out
}

func queryMatches(qs []gwv1.HTTPQueryParamMatch) map[string]*networkingv1.StringMatch {
	if len(qs) == 0 {
		return nil
	}
	out := make(map[string]*networkingv1.StringMatch, len(qs))
	for _, q := range qs {
		out[string(q.Name)] = stringMatch(gwDeref(q.Type), q.Value)
	}
	return out
}

func stringMatch(typ, value string) *networkingv1.StringMatch {
	if typ == "RegularExpression" {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: value}}
	}
	return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: value}}
}

// httpAction builds a rule's Istio route without matches. prefixRepl is
// non-nil when a ReplacePrefixMatch needs a per-variant value.
func (c *converter) httpAction(r *config.Resource, path string, rule gwv1.HTTPRouteRule) (*networkingv1.HTTPRoute, func(*networkingv1.HTTPRoute, pathVariant)) {
	hr := &networkingv1.HTTPRoute{}
	var prefixRepl func(*networkingv1.HTTPRoute, pathVariant)
	responds := false
	for i, f := range rule.Filters {
		fp := fmt.Sprintf("%s.filters[%d]", path, i)
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			hr.Headers = withHeaders(hr.Headers, f.RequestHeaderModifier, true)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			hr.Headers = withHeaders(hr.Headers, f.ResponseHeaderModifier, false)
		case gwv1.HTTPRouteFilterRequestMirror:
			if m := c.mirror(r, fp+".requestMirror", f.RequestMirror); m != nil {
				hr.Mirrors = append(hr.Mirrors, m)
			}
		case gwv1.HTTPRouteFilterCORS:
			hr.CorsPolicy = corsPolicy(f.CORS)
		case gwv1.HTTPRouteFilterRequestRedirect:
			responds = true
			rd := f.RequestRedirect
			red := &networkingv1.HTTPRedirect{Scheme: gwDeref(rd.Scheme), Authority: gwDeref(rd.Hostname), RedirectCode: uint32(301)}
			if rd.StatusCode != nil {
				red.RedirectCode = uint32(*rd.StatusCode)
			}
			switch {
			case rd.Port != nil:
				red.RedirectPort = &networkingv1.HTTPRedirect_Port{Port: uint32(*rd.Port)}
			case rd.Scheme != nil:
				red.RedirectPort = &networkingv1.HTTPRedirect_DerivePort{DerivePort: networkingv1.HTTPRedirect_FROM_PROTOCOL_DEFAULT}
			default:
				red.RedirectPort = &networkingv1.HTTPRedirect_DerivePort{DerivePort: networkingv1.HTTPRedirect_FROM_REQUEST_PORT}
			}
			if p := rd.Path; p != nil {
				if p.Type == gwv1.FullPathHTTPPathModifier {
					red.Uri = gwDeref(p.ReplaceFullPath)
				} else {
					repl := gwDeref(p.ReplacePrefixMatch)
					prefixRepl = func(hr *networkingv1.HTTPRoute, v pathVariant) { hr.Redirect.PrefixRewrite = prefixFor(repl, v) }
				}
			}
			hr.Redirect = red
		case gwv1.HTTPRouteFilterURLRewrite:
			rw := &networkingv1.HTTPRewrite{Authority: gwDeref(f.URLRewrite.Hostname)}
			if p := f.URLRewrite.Path; p != nil {
				if p.Type == gwv1.FullPathHTTPPathModifier {
					rw.UriRegexRewrite = &networkingv1.RegexRewrite{Match: "/.*", Rewrite: gwDeref(p.ReplaceFullPath)}
				} else {
					repl := gwDeref(p.ReplacePrefixMatch)
					// Envoy's prefix_rewrite swaps "the matched prefix (or path)",
					// so the exact half needs no regex.
					prefixRepl = func(hr *networkingv1.HTTPRoute, v pathVariant) { hr.Rewrite.Uri = prefixFor(repl, v) }
				}
			}
			hr.Rewrite = rw
		}
	}
	if responds {
		return hr, prefixRepl
	}
	for i, b := range rule.BackendRefs {
		d := c.destination(r, fmt.Sprintf("%s.backendRefs[%d]", path, i), b.BackendRef)
		if d == nil {
			continue
		}
		for _, f := range b.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier:
				d.Headers = withHeaders(d.Headers, f.RequestHeaderModifier, true)
			case gwv1.HTTPRouteFilterResponseHeaderModifier:
				d.Headers = withHeaders(d.Headers, f.ResponseHeaderModifier, false)
			}
		}
		hr.Route = append(hr.Route, d)
	}
	c.finishDestinations(hr)
	c.timeouts(hr, rule.Timeouts, rule.Retry)
	return hr, prefixRepl
}

// prefixFor is the replacement of a ReplacePrefixMatch for one half of a
// segment-aware prefix: "/foo" → repl, "/foo/" → repl + "/".
func prefixFor(repl string, v pathVariant) string {
	repl = strings.TrimRight(repl, "/")
	if v.exactPart {
		return cmp.Or(repl, "/")
	}
	return repl + "/"
}

// finishDestinations normalises weights to Istio's sum of 100 (largest
// remainder), drops zero weights, and answers 500 when no backend is left,
// as the Gateway API requires.
func (c *converter) finishDestinations(hr *networkingv1.HTTPRoute) {
	total := int64(0)
	for _, d := range hr.Route {
		total += int64(d.Weight)
	}
	if total == 0 {
		hr.Route = nil
		hr.DirectResponse = &networkingv1.HTTPDirectResponse{Status: 500}
		return
	}
	if len(hr.Route) == 1 {
		hr.Route[0].Weight = 0
		return
	}
	type share struct {
		i   int
		rem int64
	}
	var shares []share
	sum := int32(0)
	for i, d := range hr.Route {
		w := int64(d.Weight) * 100
		d.Weight = int32(w / total)
		sum += d.Weight
		shares = append(shares, share{i, w % total})
	}
	slices.SortStableFunc(shares, func(a, b share) int { return cmp.Compare(b.rem, a.rem) })
	for k := 0; sum < 100; k++ {
		hr.Route[shares[k%len(shares)].i].Weight++
		sum++
	}
	hr.Route = slices.DeleteFunc(hr.Route, func(d *networkingv1.HTTPRouteDestination) bool { return d.Weight == 0 })
}

func (c *converter) timeouts(hr *networkingv1.HTTPRoute, t *gwv1.HTTPRouteTimeouts, retry *gwv1.HTTPRouteRetry) {
	if hr.DirectResponse != nil {
		return
	}
	if retry != nil {
		rt := &networkingv1.HTTPRetry{Attempts: 2, RetryOn: "connect-failure,refused-stream"}
		if retry.Attempts != nil {
			rt.Attempts = int32(*retry.Attempts)
		}
		for _, code := range retry.Codes {
			rt.RetryOn += fmt.Sprintf(",%d", code)
		}
		if retry.Backoff != nil {
			if d, err := config.ParseGatewayDuration(string(*retry.Backoff)); err == nil && d > 0 {
				rt.Backoff = durationpb.New(d)
			}
		}
		hr.Retries = rt
	}
	if t == nil {
		return
	}
	if t.Request != nil {
		if d, err := config.ParseGatewayDuration(string(*t.Request)); err == nil && d > 0 {
			hr.Timeout = durationpb.New(d)
		}
	}
	if t.BackendRequest != nil {
		d, err := config.ParseGatewayDuration(string(*t.BackendRequest))
		if err != nil || d == 0 {
			return
		}
		switch {
		case hr.Retries != nil:
			hr.Retries.PerTryTimeout = durationpb.New(d)
		case hr.Timeout == nil:
			hr.Timeout = durationpb.New(d)
		default: // Istio's default retry policy, each try bounded
			hr.Retries = &networkingv1.HTTPRetry{Attempts: 2, PerTryTimeout: durationpb.New(d),
				RetryOn: "connect-failure,refused-stream,unavailable,cancelled,503"}
		}
	}
}

func withHeaders(h *networkingv1.Headers, f *gwv1.HTTPHeaderFilter, request bool) *networkingv1.Headers {
	if h == nil {
		h = &networkingv1.Headers{}
	}
	ops := &networkingv1.Headers_HeaderOperations{}
	for _, s := range f.Set {
		if ops.Set == nil {
			ops.Set = map[string]string{}
		}
		ops.Set[strings.ToLower(string(s.Name))] = s.Value
	}
	for _, a := range f.Add {
		if ops.Add == nil {
			ops.Add = map[string]string{}
		}
		ops.Add[strings.ToLower(string(a.Name))] = a.Value
	}
	for _, r := range f.Remove {
		ops.Remove = append(ops.Remove, strings.ToLower(r))
	}
	if request {
		h.Request = ops
	} else {
		h.Response = ops
	}
	return h
}

func corsPolicy(f *gwv1.HTTPCORSFilter) *networkingv1.CorsPolicy {
	p := &networkingv1.CorsPolicy{}
	for _, o := range f.AllowOrigins {
		s := string(o)
		if strings.Contains(s, "*") {
			re := strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, `.*`)
			p.AllowOrigins = append(p.AllowOrigins, &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: re}})
			continue
		}
		p.AllowOrigins = append(p.AllowOrigins, &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: s}})
	}
	for _, m := range f.AllowMethods {
		p.AllowMethods = append(p.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		p.AllowHeaders = append(p.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		p.ExposeHeaders = append(p.ExposeHeaders, string(h))
	}
	if f.MaxAge > 0 {
		p.MaxAge = durationpb.New(time.Duration(f.MaxAge) * time.Second)
	}
	if f.AllowCredentials != nil {
		p.AllowCredentials = wrapperspb.Bool(*f.AllowCredentials)
	}
	return p
}

// ---- backends ----

// destination resolves a backendRef to an Istio destination with its raw
// weight (1 by default); nil, with a problem, when it cannot be served.
func (c *converter) destination(r *config.Resource, path string, b gwv1.BackendRef) *networkingv1.HTTPRouteDestination {
	dst := c.backendHost(r, path, b.BackendObjectReference)
	if dst == nil {
		return nil
	}
	w := int32(1)
	if b.Weight != nil {
		w = *b.Weight
	}
	return &networkingv1.HTTPRouteDestination{Destination: dst, Weight: w}
}

func (c *converter) mirror(r *config.Resource, path string, m *gwv1.HTTPRequestMirrorFilter) *networkingv1.HTTPMirrorPolicy {
	dst := c.backendHost(r, path+".backendRef", m.BackendRef)
	if dst == nil {
		return nil
	}
	mp := &networkingv1.HTTPMirrorPolicy{Destination: dst}
	switch {
	case m.Percent != nil:
		mp.Percentage = &networkingv1.Percent{Value: float64(*m.Percent)}
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		mp.Percentage = &networkingv1.Percent{Value: float64(m.Fraction.Numerator) * 100 / float64(den)}
	}
	return mp
}

// backendHost resolves a backend reference: a Service (host
// NAME.NS.svc.SUFFIX), a networking.istio.io ServiceEntry (its first host)
// or Hostname (the name). Cross-namespace Services need a ReferenceGrant.
func (c *converter) backendHost(r *config.Resource, path string, b gwv1.BackendObjectReference) *networkingv1.Destination {
	group, kind := gwDeref(b.Group), cmp.Or(gwDeref(b.Kind), "Service")
	ns := cmp.Or(gwDeref(b.Namespace), r.Meta.Namespace)
	var host string
	switch {
	case group == "" && kind == "Service":
		if ns != r.Meta.Namespace && !c.granted(ns, r.Meta.Namespace, r.Kind.String(), "", "Service", string(b.Name)) {
			c.problem(r, path, "Service %s/%s is in another namespace and no ReferenceGrant there allows it", ns, b.Name)
			return nil
		}
		host = fmt.Sprintf("%s.%s.svc.%s", b.Name, ns, c.opts.suffix())
	case group == "networking.istio.io" && kind == "ServiceEntry":
		se := c.set.Get(config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: string(b.Name)})
		if se == nil || len(se.Spec.(*networkingv1.ServiceEntry).GetHosts()) == 0 {
			c.problem(r, path, "ServiceEntry %s/%s not found", ns, b.Name)
			return nil
		}
		host = se.Spec.(*networkingv1.ServiceEntry).GetHosts()[0]
	case group == "networking.istio.io" && kind == "Hostname":
		host = string(b.Name)
	default:
		c.problem(r, path, "backend kind %s (group %q) is not supported (want Service, or networking.istio.io ServiceEntry or Hostname)", kind, group)
		return nil
	}
	if !c.knownHost(host) {
		c.problem(r, path, "no ServiceEntry defines host %s (backend dropped; a rule left without backends answers 500)", host)
		return nil
	}
	d := &networkingv1.Destination{Host: host}
	if b.Port != nil {
		d.Port = &networkingv1.PortSelector{Number: uint32(*b.Port)}
	}
	return d
}

func lower(s string) string { return strings.ToLower(s) }

func orDefault(s, def string) string { return cmp.Or(s, def) }

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
