package translator

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// jwtFilterName is the metadata namespace jwt_authn writes verified
// payloads to (payload_in_metadata is the issuer, as Istio sets it).
const nameJWTAuthn = "envoy.filters.http.jwt_authn"

// scopedPolicies returns the resources of kind that apply to the proxy's
// workload, Istio's scope rules for AuthorizationPolicy and
// RequestAuthentication: in the root namespace without a selector (the
// whole mesh) or with one (matching workloads in every namespace); in the
// workload's namespace without a selector or with a matching one. A proxy
// without a workload gets none.
func (b *builder) scopedPolicies(kind config.Kind, target func(any) policyTarget) []*config.Resource {
	if b.wl == nil {
		return nil
	}
	var out []*config.Resource
	for _, r := range b.snap.Config.List(kind) {
		t := target(r.Spec)
		if len(t.refs) > 0 {
			if b.targeted(r.Meta.Namespace, t.refs) {
				out = append(out, r)
			}
			continue
		}
		if r.Meta.Namespace != b.ns && r.Meta.Namespace != b.mesh.RootNamespace {
			continue
		}
		if len(t.selector) > 0 && !registry.LabelsMatch(t.selector, b.labels) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// policyTarget is what a policy applies to: a workload selector, or
// targetRefs (validated: Gateway API Gateways of the policy's namespace).
type policyTarget struct {
	selector map[string]string
	refs     []config.PolicyTarget
}

func targetOf(sel *typev1beta1.WorkloadSelector, one *typev1beta1.PolicyTargetReference, many []*typev1beta1.PolicyTargetReference) policyTarget {
	return policyTarget{selector: sel.GetMatchLabels(), refs: config.PolicyTargets(one, many)}
}

// targeted reports whether the workload serves one of the Gateway API
// Gateways refs name in namespace ns, as Istio applies a policy with
// targetRefs to the Gateway's deployment whatever that workload's own
// namespace (a manually deployed gateway may run elsewhere). The workloads
// are those the Istio Gateways converted from it select
// (internal/gatewayapi annotates them with their source).
func (b *builder) targeted(ns string, refs []config.PolicyTarget) bool {
	for _, t := range refs {
		for _, sel := range b.snap.Config.GatewayWorkloadSelectors(ns, t.Ref.GetName()) {
			if registry.LabelsMatch(sel, b.labels) {
				return true
			}
		}
	}
	return false
}

// authzPolicies are the AuthorizationPolicies of one workload by action.
type authzPolicies struct {
	custom, deny, allow, audit []*config.Resource
}

func (b *builder) authorizationPolicies() authzPolicies {
	var ap authzPolicies
	for _, r := range b.scopedPolicies(config.KindAuthorizationPolicy, func(s any) policyTarget {
		ap := s.(*securityv1.AuthorizationPolicy)
		return targetOf(ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs())
	}) {
		switch r.Spec.(*securityv1.AuthorizationPolicy).GetAction() {
		case securityv1.AuthorizationPolicy_ALLOW:
			ap.allow = append(ap.allow, r)
		case securityv1.AuthorizationPolicy_DENY:
			ap.deny = append(ap.deny, r)
		case securityv1.AuthorizationPolicy_AUDIT:
			ap.audit = append(ap.audit, r)
		case securityv1.AuthorizationPolicy_CUSTOM:
			ap.custom = append(ap.custom, r)
		}
	}
	return ap
}

// policyName is Istio's RBAC policy name for rule i of a policy.
func policyName(r *config.Resource, i int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", r.Meta.Namespace, r.Meta.Name, i)
}

// extAuthzPolicyPrefix marks CUSTOM policies in the shadow RBAC engine;
// ext_authz runs only when the effective shadow policy id has it.
const extAuthzPolicyPrefix = "istio-ext-authz-"

// rbacRules translates policies of one action into Envoy RBAC rules. An
// ALLOW set with no usable rule yields an empty policy map, which allows
// nothing (Istio's "allow nothing"). tcp selects the network filter's
// view: HTTP-only fields cannot be evaluated there, so an ALLOW rule that
// uses one is dropped and a DENY/AUDIT rule loses those fields (it matches
// more), as Istio does.
func (b *builder) rbacRules(rs []*config.Resource, action rbacv3.RBAC_Action, tcp bool, namePrefix string) *rbacv3.RBAC {
	out := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	issuers := b.jwtIssuers()
	for _, r := range rs {
		ap := r.Spec.(*securityv1.AuthorizationPolicy)
		for i, rule := range ap.GetRules() {
			rb := &ruleBuilder{namespace: r.Meta.Namespace, tcp: tcp, issuers: issuers}
			p := rb.policy(rule)
			if rb.httpOnly && action == rbacv3.RBAC_ALLOW {
				continue
			}
			out.Policies[namePrefix+policyName(r, i)] = p
		}
	}
	return out
}

// ruleBuilder translates one Istio rule.
type ruleBuilder struct {
	namespace string   // the policy's, for service accounts without one
	tcp       bool     // building for the network RBAC filter
	issuers   []string // JWT issuers of the workload, for request principals and claims
	httpOnly  bool     // a field was skipped because tcp is set
}

// skip reports whether an HTTP-only field must be left out.
func (rb *ruleBuilder) skip() bool {
	if rb.tcp {
		rb.httpOnly = true
	}
	return rb.tcp
}

func (rb *ruleBuilder) policy(rule *securityv1.Rule) *rbacv3.Policy {
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	if len(rule.GetTo()) > 0 {
		var ops []*rbacv3.Permission
		for _, to := range rule.GetTo() {
			ops = append(ops, rb.operation(to.GetOperation()))
		}
		perms = append(perms, orPerms(ops))
	}
	if len(rule.GetFrom()) > 0 {
		var srcs []*rbacv3.Principal
		for _, from := range rule.GetFrom() {
			srcs = append(srcs, rb.source(from.GetSource()))
		}
		ids = append(ids, orIDs(srcs))
	}
	for _, c := range rule.GetWhen() {
		p, id := rb.condition(c)
		if p != nil {
			perms = append(perms, p)
		}
		if id != nil {
			ids = append(ids, id)
		}
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{andPerms(perms)}, Principals: []*rbacv3.Principal{andIDs(ids)}}
}

// ---- permissions (to, and when-conditions about the destination) ----

func (rb *ruleBuilder) operation(op *securityv1.Operation) *rbacv3.Permission {
	var all []*rbacv3.Permission
	add := func(values []string, not bool, httpOnly bool, one func(string) *rbacv3.Permission) {
		if len(values) == 0 || (httpOnly && rb.skip()) {
			return
		}
		var ps []*rbacv3.Permission
		for _, v := range values {
			ps = append(ps, one(v))
		}
		p := orPerms(ps)
		if not {
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
		}
		all = append(all, p)
	}
	host := func(v string) *rbacv3.Permission { return headerPerm(":authority", istioString(v, true, "")) }
	method := func(v string) *rbacv3.Permission { return headerPerm(":method", istioString(v, false, "")) }
	add(op.GetHosts(), false, true, host)
	add(op.GetNotHosts(), true, true, host)
	add(op.GetPorts(), false, false, portPerm)
	add(op.GetNotPorts(), true, false, portPerm)
	add(op.GetMethods(), false, true, method)
	add(op.GetNotMethods(), true, true, method)
	add(op.GetPaths(), false, true, pathPerm)
	add(op.GetNotPaths(), true, true, pathPerm)
	return andPerms(all)
}

func headerPerm(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: rbacHeader(name, m)}}
}

func rbacHeader(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	if m == nil { // "*": the header is present
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

func portPerm(v string) *rbacv3.Permission {
	n, _ := strconv.ParseUint(v, 10, 16) // validated at ingest
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
}

// pathPerm matches url_path: the path without the query string, after the
// HCM's path normalization.
func pathPerm(v string) *rbacv3.Permission {
	m := istioString(v, false, "")
	if m == nil {
		return anyPerm()
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: m},
	}}}
}

// ---- principals (from, and when-conditions about the source) ----

func (rb *ruleBuilder) source(s *securityv1.Source) *rbacv3.Principal {
	var all []*rbacv3.Principal
	add := func(values []string, not bool, httpOnly bool, one func(string) *rbacv3.Principal) {
		if len(values) == 0 || (httpOnly && rb.skip()) {
			return
		}
		var ps []*rbacv3.Principal
		for _, v := range values {
			ps = append(ps, one(v))
		}
		p := orIDs(ps)
		if not {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
		}
		all = append(all, p)
	}
	add(s.GetPrincipals(), false, false, rb.principal)
	add(s.GetNotPrincipals(), true, false, rb.principal)
	add(s.GetRequestPrincipals(), false, true, rb.requestPrincipal)
	add(s.GetNotRequestPrincipals(), true, true, rb.requestPrincipal)
	add(s.GetNamespaces(), false, false, namespaceID)
	add(s.GetNotNamespaces(), true, false, namespaceID)
	add(s.GetServiceAccounts(), false, false, rb.serviceAccount)
	add(s.GetNotServiceAccounts(), true, false, rb.serviceAccount)
	add(s.GetTrustDomains(), false, false, trustDomainID)
	add(s.GetNotTrustDomains(), true, false, trustDomainID)
	add(s.GetIpBlocks(), false, false, directIP)
	add(s.GetNotIpBlocks(), true, false, directIP)
	add(s.GetRemoteIpBlocks(), false, false, remoteIP)
	add(s.GetNotRemoteIpBlocks(), true, false, remoteIP)
	return andIDs(all)
}

// principal matches the peer certificate's URI SAN: Istio's
// "TD/ns/NS/sa/SA" is spiffe://TD/ns/NS/sa/SA; "*" is any authenticated
// peer.
func (rb *ruleBuilder) principal(v string) *rbacv3.Principal {
	var m *matcherv3.StringMatcher
	switch {
	case v == "*":
		m = regexMatcher(".+")
	case strings.HasPrefix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + v[:len(v)-1]}}
	default:
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + v}}
	}
	return authenticated(m)
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// namespaceID matches peers whose SPIFFE ID is in namespace v, Istio's
// regex on the principal name.
func namespaceID(v string) *rbacv3.Principal {
	return authenticated(regexMatcher(".*/ns/" + segmentRegex(v) + "/.*"))
}

// segmentRegex is the regex of one SPIFFE ID segment matching Istio's
// value v: exact, "PREFIX*", "*SUFFIX", or "*" for any non-empty one.
func segmentRegex(v string) string {
	switch {
	case v == "*":
		return "[^/]+"
	case strings.HasPrefix(v, "*"):
		return "[^/]*" + regexp.QuoteMeta(v[1:])
	case strings.HasSuffix(v, "*"):
		return regexp.QuoteMeta(v[:len(v)-1]) + "[^/]*"
	default:
		return regexp.QuoteMeta(v)
	}
}

// serviceAccount matches peers whose SPIFFE ID names Kubernetes service
// account v, "NS/SA" or "SA" in the policy's namespace, in any trust
// domain (source.serviceaccount). Validation refuses wildcards.
func (rb *ruleBuilder) serviceAccount(v string) *rbacv3.Principal {
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = rb.namespace, v
	}
	return authenticated(regexMatcher("spiffe://[^/]+/ns/" + regexp.QuoteMeta(ns) + "/sa/" + regexp.QuoteMeta(sa)))
}

// trustDomainID matches peers whose SPIFFE ID is in trust domain v
// (source.trustDomain): exact, "PREFIX*", "*SUFFIX" or "*" for any.
func trustDomainID(v string) *rbacv3.Principal {
	return authenticated(regexMatcher("spiffe://" + segmentRegex(v) + "/.*"))
}

func cidr(v string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
	}
	a, _ := netip.ParseAddr(v) // validated at ingest
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}
}

// directIP is Istio's ipBlocks / source.ip: the connection's peer address.
func directIP(v string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
}

// remoteIP is Istio's remoteIpBlocks / remote.ip: the client address the
// HCM derives from X-Forwarded-For (xff_num_trusted_hops).
func remoteIP(v string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr(v)}}
}

// requestPrincipal matches Istio's "ISSUER/SUBJECT" against jwt_authn's
// verified payloads (metadata envoy.filters.http.jwt_authn, key = issuer).
// "*" is any verified token; a prefix "ISSUER/sub*" or a suffix "*/SUBJECT"
// or "*SUFFIX" match the subject. An issuer no RequestAuthentication of the
// workload names can never match.
func (rb *ruleBuilder) requestPrincipal(v string) *rbacv3.Principal {
	if v == "*" {
		return rb.anyIssuer(func(iss string) *rbacv3.Principal {
			return jwtClaim(iss, []string{"iss"}, nil)
		})
	}
	if strings.HasPrefix(v, "*") {
		sub := strings.TrimPrefix(v[1:], "/")
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: sub}}
		if strings.HasPrefix(v, "*/") {
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: sub}}
		}
		return rb.anyIssuer(func(iss string) *rbacv3.Principal { return jwtClaim(iss, []string{"sub"}, m) })
	}
	i := strings.LastIndex(v, "/")
	if i < 0 {
		return never()
	}
	iss, sub := v[:i], v[i+1:]
	known := false
	for _, k := range rb.issuers {
		known = known || k == iss
	}
	if !known {
		return never()
	}
	return jwtClaim(iss, []string{"sub"}, istioString(sub, false, ""))
}

// anyIssuer ors one principal per known issuer.
func (rb *ruleBuilder) anyIssuer(one func(iss string) *rbacv3.Principal) *rbacv3.Principal {
	var ps []*rbacv3.Principal
	for _, iss := range rb.issuers {
		ps = append(ps, one(iss))
	}
	if len(ps) == 0 {
		return never()
	}
	return orIDs(ps)
}

// jwtClaim matches a claim of issuer iss's verified payload; a nil m means
// "present". Claims may be strings or lists of strings (aud, groups), so
// both forms are tried.
func jwtClaim(iss string, claim []string, m *matcherv3.StringMatcher) *rbacv3.Principal {
	path := []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: iss}}}
	for _, c := range claim {
		path = append(path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: c}})
	}
	meta := func(v *matcherv3.ValueMatcher) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
			Filter: nameJWTAuthn, Path: path, Value: v,
		}}}
	}
	if m == nil {
		return meta(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}})
	}
	str := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
	list := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: str},
	}}}
	return orIDs([]*rbacv3.Principal{meta(str), meta(list)})
}

// ---- when conditions ----

// condition translates one when-condition into a permission (about the
// destination) or a principal (about the source or request).
func (rb *ruleBuilder) condition(c *securityv1.Condition) (*rbacv3.Permission, *rbacv3.Principal) {
	key := c.GetKey()
	perm := func(one func(string) *rbacv3.Permission) *rbacv3.Permission {
		var all []*rbacv3.Permission
		if vs := c.GetValues(); len(vs) > 0 {
			var ps []*rbacv3.Permission
			for _, v := range vs {
				ps = append(ps, one(v))
			}
			all = append(all, orPerms(ps))
		}
		if vs := c.GetNotValues(); len(vs) > 0 {
			var ps []*rbacv3.Permission
			for _, v := range vs {
				ps = append(ps, one(v))
			}
			all = append(all, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: orPerms(ps)}})
		}
		return andPerms(all)
	}
	id := func(one func(string) *rbacv3.Principal) *rbacv3.Principal {
		var all []*rbacv3.Principal
		if vs := c.GetValues(); len(vs) > 0 {
			var ps []*rbacv3.Principal
			for _, v := range vs {
				ps = append(ps, one(v))
			}
			all = append(all, orIDs(ps))
		}
		if vs := c.GetNotValues(); len(vs) > 0 {
			var ps []*rbacv3.Principal
			for _, v := range vs {
				ps = append(ps, one(v))
			}
			all = append(all, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: orIDs(ps)}})
		}
		return andIDs(all)
	}
	switch {
	case key == "destination.ip":
		return perm(func(v string) *rbacv3.Permission {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidr(v)}}
		}), nil
	case key == "destination.port":
		return perm(portPerm), nil
	case key == "connection.sni":
		return perm(func(v string) *rbacv3.Permission {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: orAny(istioString(v, false, ""))}}
		}), nil
	case key == "source.ip":
		return nil, id(directIP)
	case key == "remote.ip":
		return nil, id(remoteIP)
	case key == "source.namespace":
		return nil, id(namespaceID)
	case key == "source.principal":
		return nil, id(rb.principal)
	case strings.HasPrefix(key, "request.headers["):
		if rb.skip() {
			return nil, nil
		}
		name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]"))
		return nil, id(func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: rbacHeader(name, istioString(v, false, ""))}}
		})
	case key == "request.auth.principal":
		if rb.skip() {
			return nil, nil
		}
		return nil, id(rb.requestPrincipal)
	case key == "request.auth.audiences", key == "request.auth.presenter", strings.HasPrefix(key, "request.auth.claims["):
		if rb.skip() {
			return nil, nil
		}
		claim := []string{"aud"}
		switch {
		case key == "request.auth.presenter":
			claim = []string{"azp"}
		case strings.HasPrefix(key, "request.auth.claims["):
			// request.auth.claims[a][b] is the nested claim a.b.
			inner := strings.TrimSuffix(strings.TrimPrefix(key, "request.auth.claims["), "]")
			claim = strings.Split(inner, "][")
		}
		return nil, id(func(v string) *rbacv3.Principal {
			return rb.anyIssuer(func(iss string) *rbacv3.Principal {
				return jwtClaim(iss, claim, orAny(istioString(v, false, "")))
			})
		})
	}
	// experimental.envoy.filters.*: not supported. Fail closed: the
	// condition never holds, so an ALLOW rule using it allows nothing and a
	// DENY rule using it... also never matches; ingest validation is where
	// users learn of it (docs/xds.md).
	return nil, never()
}

// ---- matchers and combinators ----

// istioString turns Istio's value forms into a StringMatcher: "*" (nil:
// any value), "prefix*", "*suffix" or exact; prefix is prepended to exact
// and prefix forms.
func istioString(v string, ignoreCase bool, prefix string) *matcherv3.StringMatcher {
	m := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
	switch {
	case v == "*":
		return nil
	case strings.HasPrefix(v, "*"):
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}
	case strings.HasSuffix(v, "*"):
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: prefix + v[:len(v)-1]}
	default:
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: prefix + v}
	}
	return m
}

// orAny is m, or a matcher of any non-empty value when m is nil.
func orAny(m *matcherv3.StringMatcher) *matcherv3.StringMatcher {
	if m == nil {
		return regexMatcher(".+")
	}
	return m
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func anyPerm() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func anyID() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

// never is a principal nothing matches.
func never() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: anyID()}}
}

func andPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return anyPerm()
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func andIDs(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return anyID()
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func orIDs(ps []*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}
