package authz

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Compile validates rbac and builds its matchers. Fields Envoy supports but
// Trellis does not (CEL conditions, the generic matcher, filter_state, URI
// templates, custom principals) are errors, so that a proxy NACKs a policy
// it would otherwise enforce differently. A nil rbac compiles to a nil
// *Policy, which allows everything.
func Compile(rbac *rbacv3.RBAC) (*Policy, error) {
	if rbac == nil {
		return nil, nil
	}
	p := &Policy{}
	switch rbac.GetAction() {
	case rbacv3.RBAC_ALLOW:
		p.action = Allow
	case rbacv3.RBAC_DENY:
		p.action = Deny
	case rbacv3.RBAC_LOG:
		p.action = Log
	default:
		return nil, fmt.Errorf("rbac.action: unsupported %v", rbac.GetAction())
	}
	for _, name := range slices.Sorted(maps.Keys(rbac.GetPolicies())) {
		pol := rbac.GetPolicies()[name]
		path := fmt.Sprintf("rbac.policies[%q]", name)
		if pol.GetCondition() != nil || pol.GetCheckedCondition() != nil {
			return nil, fmt.Errorf("%s.condition: unsupported (CEL)", path)
		}
		np := namedPolicy{name: name}
		for i, perm := range pol.GetPermissions() {
			m, err := compilePermission(fmt.Sprintf("%s.permissions[%d]", path, i), perm)
			if err != nil {
				return nil, err
			}
			np.permissions = append(np.permissions, m)
		}
		for i, pr := range pol.GetPrincipals() {
			m, err := compilePrincipal(fmt.Sprintf("%s.principals[%d]", path, i), pr)
			if err != nil {
				return nil, err
			}
			np.principals = append(np.principals, m)
		}
		p.policies = append(p.policies, np)
	}
	return p, nil
}

func compilePermission(path string, p *rbacv3.Permission) (matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return anyMatcher{}, nil
	case *rbacv3.Permission_AndRules:
		ms, err := compilePermissions(path+".and_rules", r.AndRules.GetRules())
		return andMatcher(ms), err
	case *rbacv3.Permission_OrRules:
		ms, err := compilePermissions(path+".or_rules", r.OrRules.GetRules())
		return orMatcher(ms), err
	case *rbacv3.Permission_NotRule:
		m, err := compilePermission(path+".not_rule", r.NotRule)
		return notMatcher{m}, err
	case *rbacv3.Permission_Header:
		return compileHeader(path+".header", r.Header)
	case *rbacv3.Permission_UrlPath:
		return compilePath(path+".url_path", r.UrlPath)
	case *rbacv3.Permission_DestinationIp:
		pfx, err := compileCIDR(path+".destination_ip", r.DestinationIp)
		return ipMatcher{which: destinationIP, prefix: pfx}, err
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return nil, fmt.Errorf("%s.destination_port: %d out of range", path, r.DestinationPort)
		}
		return portMatcher{lo: r.DestinationPort, hi: r.DestinationPort + 1}, nil
	case *rbacv3.Permission_DestinationPortRange:
		// Envoy's Int32Range is [start, end).
		rg := r.DestinationPortRange
		if rg.GetStart() > rg.GetEnd() || rg.GetStart() < 0 {
			return nil, fmt.Errorf("%s.destination_port_range: invalid [%d, %d)", path, rg.GetStart(), rg.GetEnd())
		}
		return portMatcher{lo: uint32(rg.GetStart()), hi: uint32(rg.GetEnd())}, nil
	case *rbacv3.Permission_Metadata:
		return compileMetadata(path+".metadata", r.Metadata)
	case *rbacv3.Permission_RequestedServerName:
		sm, err := compileString(path+".requested_server_name", r.RequestedServerName)
		return sniMatcher{sm}, err
	case nil:
		return nil, fmt.Errorf("%s: no rule", path)
	default:
		return nil, fmt.Errorf("%s: unsupported permission %T", path, r)
	}
}

func compilePermissions(path string, ps []*rbacv3.Permission) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePermission(fmt.Sprintf("%s.rules[%d]", path, i), p)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func compilePrincipal(path string, p *rbacv3.Principal) (matcher, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fmt.Errorf("%s.any: must be true", path)
		}
		return anyMatcher{}, nil
	case *rbacv3.Principal_AndIds:
		ms, err := compilePrincipals(path+".and_ids", id.AndIds.GetIds())
		return andMatcher(ms), err
	case *rbacv3.Principal_OrIds:
		ms, err := compilePrincipals(path+".or_ids", id.OrIds.GetIds())
		return orMatcher(ms), err
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(path+".not_id", id.NotId)
		return notMatcher{m}, err
	case *rbacv3.Principal_Authenticated_:
		a := authnMatcher{}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			sm, err := compileString(path+".authenticated.principal_name", pn)
			if err != nil {
				return nil, err
			}
			a.name = &sm
		}
		return a, nil
	case *rbacv3.Principal_SourceIp:
		pfx, err := compileCIDR(path+".source_ip", id.SourceIp)
		return ipMatcher{which: directRemoteIP, prefix: pfx}, err
	case *rbacv3.Principal_DirectRemoteIp:
		pfx, err := compileCIDR(path+".direct_remote_ip", id.DirectRemoteIp)
		return ipMatcher{which: directRemoteIP, prefix: pfx}, err
	case *rbacv3.Principal_RemoteIp:
		pfx, err := compileCIDR(path+".remote_ip", id.RemoteIp)
		return ipMatcher{which: remoteIP, prefix: pfx}, err
	case *rbacv3.Principal_Header:
		return compileHeader(path+".header", id.Header)
	case *rbacv3.Principal_UrlPath:
		return compilePath(path+".url_path", id.UrlPath)
	case *rbacv3.Principal_Metadata:
		return compileMetadata(path+".metadata", id.Metadata)
	case nil:
		return nil, fmt.Errorf("%s: no identifier", path)
	default:
		return nil, fmt.Errorf("%s: unsupported principal %T", path, id)
	}
}

func compilePrincipals(path string, ps []*rbacv3.Principal) ([]matcher, error) {
	out := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePrincipal(fmt.Sprintf("%s.ids[%d]", path, i), p)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func compileCIDR(path string, c *corev3.CidrRange) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %q is not an IP address", path, c.GetAddressPrefix())
	}
	ip = ip.Unmap()
	bits := int(c.GetPrefixLen().GetValue())
	if bits > ip.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%s.prefix_len: %d too long for %s", path, bits, ip)
	}
	return netip.PrefixFrom(ip, bits).Masked(), nil
}

// compileHeader compiles Envoy's HeaderMatcher (the route package's type).
func compileHeader(path string, h *routev3.HeaderMatcher) (matcher, error) {
	name := strings.ToLower(h.GetName())
	if name == "" {
		return nil, fmt.Errorf("%s.name: empty", path)
	}
	m := headerMatcher{invert: h.GetInvertMatch(), missingEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if strings.HasPrefix(name, ":") {
		m.key = name
	} else {
		m.key = http.CanonicalHeaderKey(name)
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		m.kind = headerPresent
		m.present = true
	case *routev3.HeaderMatcher_PresentMatch:
		m.kind = headerPresent
		m.present = s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		m.str = stringMatcher{kind: matchExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		m.str = stringMatcher{kind: matchPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		m.str = stringMatcher{kind: matchSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		m.str = stringMatcher{kind: matchContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(path+".safe_regex_match", s.SafeRegexMatch)
		if err != nil {
			return nil, err
		}
		m.str = stringMatcher{kind: matchRegex, re: re}
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(path+".string_match", s.StringMatch)
		if err != nil {
			return nil, err
		}
		m.str = sm
	case *routev3.HeaderMatcher_RangeMatch:
		m.kind = headerRange
		m.lo, m.hi = s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		return nil, fmt.Errorf("%s: unsupported header match %T", path, s)
	}
	return m, nil
}

func compilePath(path string, p *matcherv3.PathMatcher) (matcher, error) {
	sm := p.GetPath()
	if sm == nil {
		return nil, fmt.Errorf("%s.path: missing", path)
	}
	s, err := compileString(path+".path", sm)
	return pathMatcher{s}, err
}

func compileMetadata(path string, m *matcherv3.MetadataMatcher) (matcher, error) {
	if m.GetFilter() == "" {
		return nil, fmt.Errorf("%s.filter: empty", path)
	}
	out := metadataMatcher{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		if seg.GetKey() == "" {
			return nil, fmt.Errorf("%s.path[%d].key: empty", path, i)
		}
		out.path = append(out.path, seg.GetKey())
	}
	if len(out.path) == 0 {
		return nil, fmt.Errorf("%s.path: empty", path)
	}
	v, err := compileValue(path+".value", m.GetValue())
	if err != nil {
		return nil, err
	}
	out.value = v
	return out, nil
}

func compileValue(path string, v *matcherv3.ValueMatcher) (valueMatcher, error) {
	var out valueMatcher
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		out.kind = valueNull
	case *matcherv3.ValueMatcher_DoubleMatch:
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			out.kind, out.lo = valueDoubleExact, d.Exact
		case *matcherv3.DoubleMatcher_Range:
			out.kind, out.lo, out.hi = valueDoubleRange, d.Range.GetStart(), d.Range.GetEnd()
		default:
			return out, fmt.Errorf("%s.double_match: no match pattern", path)
		}
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(path+".string_match", p.StringMatch)
		if err != nil {
			return out, err
		}
		out.kind, out.str = valueString, sm
	case *matcherv3.ValueMatcher_BoolMatch:
		out.kind, out.b = valueBool, p.BoolMatch
	case *matcherv3.ValueMatcher_PresentMatch:
		out.kind, out.b = valuePresent, p.PresentMatch
	case *matcherv3.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return out, fmt.Errorf("%s.list_match.one_of: missing", path)
		}
		sub, err := compileValue(path+".list_match.one_of", one)
		if err != nil {
			return out, err
		}
		out.kind, out.sub = valueList, []valueMatcher{sub}
	case *matcherv3.ValueMatcher_OrMatch:
		out.kind = valueOr
		for i, vm := range p.OrMatch.GetValueMatchers() {
			sub, err := compileValue(fmt.Sprintf("%s.or_match.value_matchers[%d]", path, i), vm)
			if err != nil {
				return out, err
			}
			out.sub = append(out.sub, sub)
		}
	case nil:
		return out, fmt.Errorf("%s: no match pattern", path)
	default:
		return out, fmt.Errorf("%s: unsupported value match %T", path, p)
	}
	return out, nil
}
