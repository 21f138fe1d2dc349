package compile

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// maxQueryName is Envoy's bound on a query_parameters matcher's name.
const maxQueryName = 1024

// ParseRouteConfiguration checks rc against the subset in docs/xds.md and
// converts it. Safe-regex compile errors are errors.
func ParseRouteConfiguration(rc *routev3.RouteConfiguration) (*runtime.RouteTable, error) {
	rt, err := parseRouteConfiguration("", rc)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.GetName(), err)
	}
	return rt, nil
}

// parseRouteConfiguration prefixes field paths with prefix, which is empty
// or ends in ".".
func parseRouteConfiguration(prefix string, rc *routev3.RouteConfiguration) (*runtime.RouteTable, error) {
	switch {
	case rc.GetVhds() != nil:
		return nil, fmt.Errorf("%svhds: unsupported", prefix)
	case len(rc.GetRequestHeadersToAdd()) > 0 || len(rc.GetRequestHeadersToRemove()) > 0 ||
		len(rc.GetResponseHeadersToAdd()) > 0 || len(rc.GetResponseHeadersToRemove()) > 0:
		return nil, fmt.Errorf("%s*_headers_to_*: unsupported on the route configuration, set them on routes", prefix)
	case len(rc.GetInternalOnlyHeaders()) > 0:
		return nil, fmt.Errorf("%sinternal_only_headers: unsupported", prefix)
	case len(rc.GetClusterSpecifierPlugins()) > 0:
		return nil, fmt.Errorf("%scluster_specifier_plugins: unsupported", prefix)
	case len(rc.GetRequestMirrorPolicies()) > 0:
		return nil, fmt.Errorf("%srequest_mirror_policies: unsupported", prefix)
	case rc.GetVhostHeader() != "":
		return nil, fmt.Errorf("%svhost_header: unsupported", prefix)
	}
	rt := &runtime.RouteTable{Name: rc.GetName(), VirtualHosts: make([]*runtime.VirtualHost, 0, len(rc.GetVirtualHosts()))}
	seen := map[string]bool{}
	var retries retryPolicies
	for i, vh := range rc.GetVirtualHosts() {
		path := fmt.Sprintf("%svirtual_hosts[%d]", prefix, i)
		v, err := parseVirtualHost(path, vh)
		if err != nil {
			return nil, err
		}
		for j, d := range v.Domains {
			if seen[strings.ToLower(d)] {
				return nil, fmt.Errorf("%s.domains[%d]: duplicate domain %q", path, j, d)
			}
			seen[strings.ToLower(d)] = true
		}
		for _, r := range v.Routes {
			if r.Forward != nil && r.Forward.Retry != nil {
				r.Forward.Retry = retries.share(r.Forward.Retry)
			}
		}
		rt.VirtualHosts = append(rt.VirtualHosts, v)
	}
	return rt, nil
}

// retryPolicies shares equal retry policies among a table's routes: Istio
// gives every route of a sidecar's outbound tables the same default policy,
// about 280 bytes each when parsed, and the request path compiles each
// distinct policy once per table (issue 5: KB per cluster).
type retryPolicies struct{ distinct []*runtime.RetryPolicy }

// maxDistinctRetries bounds the comparisons per route.
const maxDistinctRetries = 8

// share returns the first policy equal to p, or p (remembered while there
// are few distinct ones).
func (rs *retryPolicies) share(p *runtime.RetryPolicy) *runtime.RetryPolicy {
	for _, q := range rs.distinct {
		if reflect.DeepEqual(p, q) {
			return q
		}
	}
	if len(rs.distinct) < maxDistinctRetries {
		rs.distinct = append(rs.distinct, p)
	}
	return p
}

func parseVirtualHost(path string, vh *routev3.VirtualHost) (*runtime.VirtualHost, error) {
	switch {
	case len(vh.GetRequestHeadersToAdd()) > 0 || len(vh.GetRequestHeadersToRemove()) > 0 ||
		len(vh.GetResponseHeadersToAdd()) > 0 || len(vh.GetResponseHeadersToRemove()) > 0:
		return nil, fmt.Errorf("%s.*_headers_to_*: unsupported on the virtual host, set them on routes", path)
	case vh.GetRetryPolicy() != nil || vh.GetRetryPolicyTypedConfig() != nil:
		return nil, fmt.Errorf("%s.retry_policy: unsupported on the virtual host", path)
	case vh.GetMatcher() != nil:
		return nil, fmt.Errorf("%s.matcher: unsupported", path)
	case len(vh.GetRequestMirrorPolicies()) > 0:
		return nil, fmt.Errorf("%s.request_mirror_policies: unsupported", path)
	}
	switch {
	case vh.GetName() == "":
		return nil, fmt.Errorf("%s.name: empty", path)
	case len(vh.GetDomains()) == 0:
		return nil, fmt.Errorf("%s.domains: empty", path)
	}
	v := &runtime.VirtualHost{Name: vh.GetName(), Domains: append([]string(nil), vh.GetDomains()...)}
	switch vh.GetRequireTls() {
	case routev3.VirtualHost_NONE:
	case routev3.VirtualHost_EXTERNAL_ONLY, routev3.VirtualHost_ALL:
		// EXTERNAL_ONLY differs only for internal requests, which Trellis
		// does not tell apart: both redirect plain text.
		v.RequireTLS = true
	default:
		return nil, fmt.Errorf("%s.require_tls: unsupported %v", path, vh.GetRequireTls())
	}
	pf, err := parsePerFilterConfig(path, vh.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	v.PerFilter = pf
	for j, d := range v.Domains {
		if err := headerValue(fmt.Sprintf("%s.domains[%d]", path, j), d); err != nil {
			return nil, err
		}
		if err := checkDomain(d); err != nil {
			return nil, fmt.Errorf("%s.domains[%d]: %w", path, j, err)
		}
	}
	for j, r := range vh.GetRoutes() {
		rr, err := parseRoute(fmt.Sprintf("%s.routes[%d]", path, j), r)
		if err != nil {
			return nil, err
		}
		v.Routes = append(v.Routes, rr)
	}
	return v, nil
}

// checkDomain applies Envoy's rule: at most one wildcard, at the start or end.
func checkDomain(d string) error {
	if d == "*" {
		return nil
	}
	n := strings.Count(d, "*")
	if n == 0 || (n == 1 && (strings.HasPrefix(d, "*") || strings.HasSuffix(d, "*"))) {
		return nil
	}
	return fmt.Errorf("invalid domain %q: a wildcard is allowed only at the start or end", d)
}

func parseRoute(path string, r *routev3.Route) (*runtime.Route, error) {
	if len(r.GetRouteSpecifiers()) > 0 {
		return nil, fmt.Errorf("%s.route_specifiers: unsupported", path)
	}
	m, err := parseRouteMatch(path+".match", r.GetMatch())
	if err != nil {
		return nil, err
	}
	out := &runtime.Route{Name: r.GetName(), Match: m}
	if out.PerFilter, err = parsePerFilterConfig(path, r.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	if out.RequestHeaders, err = parseMutation(path+".request_headers_to_add", r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()); err != nil {
		return nil, err
	}
	if out.ResponseHeaders, err = parseMutation(path+".response_headers_to_add", r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		out.Forward, err = parseRouteAction(path+".route", a.Route)
	case *routev3.Route_Redirect:
		out.Redirect, err = parseRedirect(path+".redirect", a.Redirect)
	case *routev3.Route_DirectResponse:
		out.Direct, err = parseDirect(path+".direct_response", a.DirectResponse)
	case nil:
		err = fmt.Errorf("%s: no action", path)
	default:
		err = fmt.Errorf("%s: unsupported action %T", path, a)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func parseRouteMatch(path string, m *routev3.RouteMatch) (runtime.RouteMatch, error) {
	var out runtime.RouteMatch
	switch {
	case m.GetRuntimeFraction() != nil:
		return out, fmt.Errorf("%s.runtime_fraction: unsupported", path)
	case m.GetGrpc() != nil:
		return out, fmt.Errorf("%s.grpc: unsupported", path)
	case m.GetTlsContext() != nil:
		return out, fmt.Errorf("%s.tls_context: unsupported", path)
	case len(m.GetDynamicMetadata()) > 0:
		return out, fmt.Errorf("%s.dynamic_metadata: unsupported", path)
	case len(m.GetFilterState()) > 0:
		return out, fmt.Errorf("%s.filter_state: unsupported", path)
	case len(m.GetCookies()) > 0:
		return out, fmt.Errorf("%s.cookies: unsupported", path)
	}
	out.CaseSensitive = m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.PathKind, out.Path = runtime.PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.PathKind, out.Path = runtime.PathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(path+".safe_regex", p.SafeRegex)
		if err != nil {
			return out, err
		}
		out.PathKind, out.Path, out.Regex = runtime.PathRegex, p.SafeRegex.GetRegex(), re
	case nil:
		return out, fmt.Errorf("%s: no path specifier", path)
	default:
		return out, fmt.Errorf("%s: unsupported path specifier %T", path, p)
	}
	for i, h := range m.GetHeaders() {
		hm, err := parseHeaderMatcher(fmt.Sprintf("%s.headers[%d]", path, i), h)
		if err != nil {
			return out, err
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qpath := fmt.Sprintf("%s.query_parameters[%d]", path, i)
		switch {
		case q.GetName() == "":
			return out, fmt.Errorf("%s.name: empty", qpath)
		case len(q.GetName()) > maxQueryName:
			return out, fmt.Errorf("%s.name: %d bytes exceeds %d", qpath, len(q.GetName()), maxQueryName)
		}
		qm := runtime.QueryMatch{Name: q.GetName(), Match: runtime.StringMatch{Kind: runtime.MatchPresent}}
		if sm := q.GetStringMatch(); sm != nil {
			s, err := parseStringMatch(qpath+".string_match", sm)
			if err != nil {
				return out, err
			}
			qm.Match = s
		}
		out.Query = append(out.Query, qm)
	}
	return out, nil
}

func parseHeaderMatcher(path string, h *routev3.HeaderMatcher) (runtime.HeaderMatch, error) {
	out := runtime.HeaderMatch{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch()}
	if err := headerName(path+".name", h.GetName()); err != nil {
		return out, err
	}
	if h.GetTreatMissingHeaderAsEmpty() {
		return out, fmt.Errorf("%s.treat_missing_header_as_empty: unsupported", path)
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		// Envoy treats a matcher with no specifier as a presence match.
		out.Match = runtime.StringMatch{Kind: runtime.MatchPresent}
	case *routev3.HeaderMatcher_PresentMatch:
		out.Match = runtime.StringMatch{Kind: runtime.MatchPresent}
		if !s.PresentMatch { // present_match: false matches an absent header
			out.Invert = !out.Invert
		}
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := parseStringMatch(path+".string_match", s.StringMatch)
		if err != nil {
			return out, err
		}
		out.Match = sm
	case *routev3.HeaderMatcher_ExactMatch:
		out.Match = runtime.StringMatch{Kind: runtime.MatchExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		if s.PrefixMatch == "" {
			return out, fmt.Errorf("%s.prefix_match: empty", path)
		}
		out.Match = runtime.StringMatch{Kind: runtime.MatchPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		if s.SuffixMatch == "" {
			return out, fmt.Errorf("%s.suffix_match: empty", path)
		}
		out.Match = runtime.StringMatch{Kind: runtime.MatchSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(path+".safe_regex_match", s.SafeRegexMatch)
		if err != nil {
			return out, err
		}
		out.Match = runtime.StringMatch{Kind: runtime.MatchRegex, Value: s.SafeRegexMatch.GetRegex(), Regex: re}
	default:
		return out, fmt.Errorf("%s: unsupported header match %T", path, s)
	}
	return out, nil
}

func parseStringMatch(path string, m *matcherv3.StringMatcher) (runtime.StringMatch, error) {
	out := runtime.StringMatch{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = runtime.MatchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		if p.Prefix == "" {
			return out, fmt.Errorf("%s.prefix: empty", path)
		}
		out.Kind, out.Value = runtime.MatchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		if p.Suffix == "" {
			return out, fmt.Errorf("%s.suffix: empty", path)
		}
		out.Kind, out.Value = runtime.MatchSuffix, p.Suffix
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(path+".safe_regex", p.SafeRegex)
		if err != nil {
			return out, err
		}
		// ignore_case has no effect on safe_regex in Envoy.
		out.Kind, out.Value, out.Regex, out.IgnoreCase = runtime.MatchRegex, p.SafeRegex.GetRegex(), re, false
	default:
		return out, fmt.Errorf("%s: unsupported string match %T", path, p)
	}
	return out, nil
}

// compileRegex compiles an RE2 safe_regex for a full match, as Envoy does.
func compileRegex(path string, m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if m.GetRegex() == "" {
		return nil, fmt.Errorf("%s.regex: empty", path)
	}
	re, err := regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return re, nil
}

func parseRouteAction(path string, a *routev3.RouteAction) (*runtime.ForwardAction, error) {
	switch {
	case a.GetRegexRewrite() != nil && a.GetPrefixRewrite() != "":
		return nil, fmt.Errorf("%s.regex_rewrite: set together with prefix_rewrite", path)
	case a.GetPathRewritePolicy() != nil:
		return nil, fmt.Errorf("%s.path_rewrite_policy: unsupported", path)
	case a.GetAutoHostRewrite().GetValue():
		return nil, fmt.Errorf("%s.auto_host_rewrite: unsupported", path)
	case a.GetHostRewriteHeader() != "":
		return nil, fmt.Errorf("%s.host_rewrite_header: unsupported", path)
	case a.GetHostRewritePathRegex() != nil:
		return nil, fmt.Errorf("%s.host_rewrite_path_regex: unsupported", path)
	case a.GetRetryPolicyTypedConfig() != nil:
		return nil, fmt.Errorf("%s.retry_policy_typed_config: unsupported", path)
	case a.GetInternalRedirectPolicy() != nil:
		return nil, fmt.Errorf("%s.internal_redirect_policy: unsupported", path)
	case len(a.GetUpgradeConfigs()) > 0:
		return nil, fmt.Errorf("%s.upgrade_configs: unsupported", path)
	}
	if err := headerValue(path+".prefix_rewrite", a.GetPrefixRewrite()); err != nil {
		return nil, err
	}
	if err := headerValue(path+".host_rewrite_literal", a.GetHostRewriteLiteral()); err != nil {
		return nil, err
	}
	f := &runtime.ForwardAction{
		Timeout:       durationOf(a.GetTimeout()),
		PrefixRewrite: a.GetPrefixRewrite(),
		HostRewrite:   a.GetHostRewriteLiteral(),
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		var err error
		if f.RegexRewrite, err = parseRegexRewrite(path+".regex_rewrite", rr); err != nil {
			return nil, err
		}
	}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if c.Cluster == "" {
			return nil, fmt.Errorf("%s.cluster: empty", path)
		}
		f.Clusters = []runtime.WeightedCluster{{Name: c.Cluster, Weight: 1}}
	case *routev3.RouteAction_WeightedClusters:
		wc, err := parseWeightedClusters(path+".weighted_clusters", c.WeightedClusters)
		if err != nil {
			return nil, err
		}
		f.Clusters = wc
	case nil:
		return nil, fmt.Errorf("%s: no cluster specifier", path)
	default:
		return nil, fmt.Errorf("%s: unsupported cluster specifier %T", path, c)
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		r := &runtime.RetryPolicy{
			Attempts:      1, // Envoy's default when num_retries is unset
			PerTryTimeout: durationOf(rp.GetPerTryTimeout()),
			StatusCodes:   append([]uint32(nil), rp.GetRetriableStatusCodes()...),
		}
		if rp.GetNumRetries() != nil {
			r.Attempts = rp.GetNumRetries().GetValue()
		}
		for _, on := range strings.Split(rp.GetRetryOn(), ",") {
			if on = strings.TrimSpace(on); on != "" {
				r.RetryOn = append(r.RetryOn, on)
			}
		}
		if err := parseRetryExtras(path+".retry_policy", rp, r); err != nil {
			return nil, err
		}
		f.Retry = r
	}
	var err error
	if f.HashPolicy, err = parseHashPolicies(path, a.GetHashPolicy()); err != nil {
		return nil, err
	}
	if f.Mirrors, err = parseMirrors(path, a.GetRequestMirrorPolicies()); err != nil {
		return nil, err
	}
	return f, nil
}

// durationOf is d, or 0 when unset (AsDuration of nil is 0 too; this says so).
func durationOf(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func parseWeightedClusters(path string, wc *routev3.WeightedCluster) ([]runtime.WeightedCluster, error) {
	if wc.GetRandomValueSpecifier() != nil {
		return nil, fmt.Errorf("%s.header_name: unsupported", path)
	}
	if wc.GetUseHashPolicy().GetValue() {
		return nil, fmt.Errorf("%s.use_hash_policy: unsupported", path)
	}
	var (
		out   []runtime.WeightedCluster
		total uint64
	)
	for i, c := range wc.GetClusters() {
		cpath := fmt.Sprintf("%s.clusters[%d]", path, i)
		switch {
		case c.GetClusterHeader() != "":
			return nil, fmt.Errorf("%s.cluster_header: unsupported", cpath)
		case c.GetHostRewriteSpecifier() != nil:
			return nil, fmt.Errorf("%s.host_rewrite_literal: unsupported on a weighted cluster", cpath)
		}
		if c.GetName() == "" {
			return nil, fmt.Errorf("%s.name: empty", cpath)
		}
		w := runtime.WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()}
		var err error
		if w.RequestHeaders, err = parseMutation(cpath+".request_headers_to_add", c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove()); err != nil {
			return nil, err
		}
		if w.ResponseHeaders, err = parseMutation(cpath+".response_headers_to_add", c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove()); err != nil {
			return nil, err
		}
		total += uint64(w.Weight)
		out = append(out, w)
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: weights sum to 0", path)
	}
	return out, nil
}

// parseMutation maps header options: append_action APPEND_IF_EXISTS_OR_ADD
// (Istio's add) to Add, OVERWRITE_IF_EXISTS_OR_ADD (Istio's set) to Set.
// The deprecated append field wins when present, as in Envoy.
func parseMutation(path string, add []*corev3.HeaderValueOption, remove []string) (runtime.HeaderMutation, error) {
	var m runtime.HeaderMutation
	if len(add) > maxHeadersToAdd {
		return m, fmt.Errorf("%s: %d headers exceeds %d", path, len(add), maxHeadersToAdd)
	}
	for i, o := range add {
		if err := checkHeader(fmt.Sprintf("%s[%d].header", path, i), o.GetHeader()); err != nil {
			return m, err
		}
		h := runtime.Header{Name: o.GetHeader().GetKey(), Value: o.GetHeader().GetValue()}
		if h.Value == "" && len(o.GetHeader().GetRawValue()) > 0 {
			h.Value = string(o.GetHeader().GetRawValue())
		}
		appendHeader := o.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		switch {
		case o.GetAppend() != nil:
			appendHeader = o.GetAppend().GetValue()
		case o.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
			o.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		default:
			return m, fmt.Errorf("%s[%d].append_action: unsupported %v", path, i, o.GetAppendAction())
		}
		if appendHeader {
			m.Add = append(m.Add, h)
		} else {
			m.Set = append(m.Set, h)
		}
	}
	for i, name := range remove {
		if err := headerName(fmt.Sprintf("%s[%d]", strings.TrimSuffix(path, "_add")+"_remove", i), name); err != nil {
			return m, err
		}
	}
	m.Remove = append([]string(nil), remove...)
	return m, nil
}

func parseRedirect(path string, r *routev3.RedirectAction) (*runtime.RedirectAction, error) {
	out := &runtime.RedirectAction{Host: r.GetHostRedirect(), Port: r.GetPortRedirect()}
	if err := headerValue(path+".host_redirect", r.GetHostRedirect()); err != nil {
		return nil, err
	}
	if err := headerValue(path+".path_redirect", r.GetPathRedirect()); err != nil {
		return nil, err
	}
	switch {
	case r.GetStripQuery():
		return nil, fmt.Errorf("%s.strip_query: unsupported", path)
	case r.GetPrefixRewrite() != "":
		return nil, fmt.Errorf("%s.prefix_rewrite: unsupported", path)
	case r.GetRegexRewrite() != nil:
		return nil, fmt.Errorf("%s.regex_rewrite: unsupported", path)
	}
	out.Path = r.GetPathRedirect()
	if r.GetHttpsRedirect() {
		out.Scheme = "https"
	} else {
		out.Scheme = r.GetSchemeRedirect()
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		out.StatusCode = 301
	case routev3.RedirectAction_FOUND:
		out.StatusCode = 302
	case routev3.RedirectAction_SEE_OTHER:
		out.StatusCode = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		out.StatusCode = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		out.StatusCode = 308
	default:
		return nil, fmt.Errorf("%s.response_code: unsupported %v", path, r.GetResponseCode())
	}
	return out, nil
}

func parseDirect(path string, d *routev3.DirectResponseAction) (*runtime.DirectResponse, error) {
	if d.GetBodyFormat() != nil {
		return nil, fmt.Errorf("%s.body_format: unsupported", path)
	}
	if d.GetStatus() < 200 || d.GetStatus() >= 600 {
		return nil, fmt.Errorf("%s.status: %d out of [200, 600)", path, d.GetStatus())
	}
	out := &runtime.DirectResponse{Status: int(d.GetStatus())}
	switch b := d.GetBody().GetSpecifier().(type) {
	case nil:
	case *corev3.DataSource_InlineString:
		out.Body = []byte(b.InlineString)
	case *corev3.DataSource_InlineBytes:
		out.Body = append([]byte(nil), b.InlineBytes...)
	default:
		return nil, fmt.Errorf("%s.body: unsupported data source %T, want inline_string or inline_bytes", path, b)
	}
	return out, nil
}

// parseRegexRewrite converts a RegexMatchAndSubstitute. The pattern is not
// anchored (Envoy replaces every match); the substitution's \N groups and
// "\\" escapes become regexp.Expand's ${N} and literal text.
func parseRegexRewrite(path string, m *matcherv3.RegexMatchAndSubstitute) (*runtime.RegexRewrite, error) {
	if m.GetPattern().GetRegex() == "" {
		return nil, fmt.Errorf("%s.pattern: empty", path)
	}
	re, err := regexp.Compile(m.GetPattern().GetRegex())
	if err != nil {
		return nil, fmt.Errorf("%s.pattern: %w", path, err)
	}
	if err := headerValue(path+".substitution", m.GetSubstitution()); err != nil {
		return nil, err
	}
	tmpl, err := substitutionTemplate(m.GetSubstitution(), re.NumSubexp())
	if err != nil {
		return nil, fmt.Errorf("%s.substitution: %w", path, err)
	}
	return &runtime.RegexRewrite{Pattern: re, Template: tmpl}, nil
}

// substitutionTemplate turns an RE2 rewrite string (\0-\9 groups, \\ a
// backslash) into regexp.Expand syntax, refusing groups the pattern lacks
// and other escapes, as RE2 does.
func substitutionTemplate(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c != '\\':
			b.WriteByte(c)
		case i+1 == len(sub):
			return "", errors.New("trailing backslash")
		case sub[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case sub[i+1] >= '0' && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > groups {
				return "", fmt.Errorf("group \\%d: the pattern has %d", n, groups)
			}
			fmt.Fprintf(&b, "${%d}", n)
			i++
		default:
			return "", fmt.Errorf("invalid escape \\%c", sub[i+1])
		}
	}
	return b.String(), nil
}
