package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	typev1beta1 "istio.io/api/type/v1beta1"

	securityv1 "istio.io/api/security/v1"
)

// SecurityAPIGroup is the API group of PeerAuthentication,
// RequestAuthentication and AuthorizationPolicy.
const SecurityAPIGroup = "security.istio.io"

// securityVersions are the apiVersions accepted for the security kinds.
var securityVersions = []string{SecurityAPIGroup + "/v1", SecurityAPIGroup + "/v1beta1"}

// securityAPIVersions returns the accepted apiVersions of a security kind,
// or nil for other kinds.
func securityAPIVersions(k Kind) []string {
	switch k {
	case KindPeerAuthentication, KindRequestAuthentication, KindAuthorizationPolicy:
		return securityVersions
	}
	return nil
}

// newSecuritySpec returns an empty spec of a security kind, or nil. The
// types are istio.io/api/security/v1 (aliases of v1beta1).
func newSecuritySpec(k Kind) proto.Message {
	switch k {
	case KindPeerAuthentication:
		return &securityv1.PeerAuthentication{}
	case KindRequestAuthentication:
		return &securityv1.RequestAuthentication{}
	case KindAuthorizationPolicy:
		return &securityv1.AuthorizationPolicy{}
	}
	return nil
}

// security runs the checks of the security kinds; other specs are ignored.
func (c *checker) security(spec proto.Message) {
	switch s := spec.(type) {
	case *securityv1.PeerAuthentication:
		c.peerAuthentication(s)
	case *securityv1.RequestAuthentication:
		c.requestAuthentication(s)
	case *securityv1.AuthorizationPolicy:
		c.authorizationPolicy(s)
	}
}

func (c *checker) workloadSelector(path string, sel *typev1beta1.WorkloadSelector) {
	if sel == nil {
		return
	}
	c.labels(path+".matchLabels", sel.GetMatchLabels())
}

// PolicyTarget is one target of a security policy and its field path
// under spec.
type PolicyTarget struct {
	Ref   *typev1beta1.PolicyTargetReference
	Field string // "targetRef" or "targetRefs[i]"
}

// PolicyTargets lists a policy's targets: targetRef when set (validation
// refuses it together with targetRefs), else targetRefs.
func PolicyTargets(one *typev1beta1.PolicyTargetReference, many []*typev1beta1.PolicyTargetReference) []PolicyTarget {
	if one != nil {
		return []PolicyTarget{{Ref: one, Field: "targetRef"}}
	}
	out := make([]PolicyTarget, len(many))
	for i, r := range many {
		out[i] = PolicyTarget{Ref: r, Field: fmt.Sprintf("targetRefs[%d]", i)}
	}
	return out
}

// targetRefs checks a policy's targets: Gateway API Gateways of the
// policy's own namespace (a Service or ServiceEntry target is for ambient
// waypoints, which Trellis does not run). A policy with targets has no
// selector: the targets say which workloads it applies to.
func (c *checker) targetRefs(path string, sel *typev1beta1.WorkloadSelector, one *typev1beta1.PolicyTargetReference, many []*typev1beta1.PolicyTargetReference) {
	if one != nil && len(many) > 0 {
		c.add(path+".targetRef", "cannot be set with targetRefs")
	}
	targets := PolicyTargets(one, many)
	if len(targets) > 0 && sel != nil {
		c.add(path+".selector", "cannot be set with targetRef or targetRefs")
	}
	for _, t := range targets {
		p, r := path+"."+t.Field, t.Ref
		switch {
		case r.GetKind() != "Gateway" || r.GetGroup() != GatewayAPIGroup:
			c.add(p, "kind %q, group %q: only Gateway (group %s) targets are supported; Service and ServiceEntry targets are for ambient waypoints", r.GetKind(), r.GetGroup(), GatewayAPIGroup)
		case r.GetName() == "":
			c.add(p+".name", "required")
		case r.GetNamespace() != "":
			c.add(p+".namespace", "omit it: a policy targets Gateways of its own namespace only")
		}
	}
}

// ---- PeerAuthentication ----

func (c *checker) peerAuthentication(pa *securityv1.PeerAuthentication) {
	c.workloadSelector("spec.selector", pa.GetSelector())
	if len(pa.GetPortLevelMtls()) > 0 && len(pa.GetSelector().GetMatchLabels()) == 0 {
		// Istio: port-level settings only make sense for one workload's ports.
		c.add("spec.portLevelMtls", "portLevelMtls requires a workload selector")
	}
	for port := range pa.GetPortLevelMtls() {
		path := "spec.portLevelMtls[" + strconv.FormatUint(uint64(port), 10) + "]"
		c.port(path, port)
		if pa.GetPortLevelMtls()[port] == nil {
			c.add(path, "mtls settings are required")
		}
	}
}

// ---- RequestAuthentication ----

func (c *checker) requestAuthentication(ra *securityv1.RequestAuthentication) {
	c.workloadSelector("spec.selector", ra.GetSelector())
	c.targetRefs("spec", ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs())
	issuers := map[string]int{}
	for i, r := range ra.GetJwtRules() {
		path := fmt.Sprintf("spec.jwtRules[%d]", i)
		c.jwtRule(path, r)
		if first, dup := issuers[r.GetIssuer()]; dup && r.GetIssuer() != "" {
			c.add(path+".issuer", "issuer %q is already used by jwtRules[%d]", clip(r.GetIssuer()), first)
		} else {
			issuers[r.GetIssuer()] = i
		}
	}
}

func (c *checker) jwtRule(path string, r *securityv1.JWTRule) {
	if r.GetIssuer() == "" {
		c.add(path+".issuer", "issuer is required")
	}
	for i, a := range r.GetAudiences() {
		if a == "" {
			c.add(fmt.Sprintf("%s.audiences[%d]", path, i), "audience must not be empty")
		}
	}
	if u := r.GetJwksUri(); u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			c.add(path+".jwksUri", "%q is not an http or https URL", clip(u))
		}
	}
	if j := r.GetJwks(); j != "" {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal([]byte(j), &set); err != nil || len(set.Keys) == 0 {
			c.add(path+".jwks", "must be a JSON Web Key Set with at least one key")
		}
	}
	for i, h := range r.GetFromHeaders() {
		if h.GetName() == "" { // HTTP header names are case-insensitive; "Authorization" is common
			c.add(fmt.Sprintf("%s.fromHeaders[%d].name", path, i), "header name must not be empty")
		}
	}
	for i, p := range r.GetFromParams() {
		if p == "" {
			c.add(fmt.Sprintf("%s.fromParams[%d]", path, i), "parameter name must not be empty")
		}
	}
	for i, p := range r.GetFromCookies() {
		if p == "" {
			c.add(fmt.Sprintf("%s.fromCookies[%d]", path, i), "cookie name must not be empty")
		}
	}
	if h := r.GetOutputPayloadToHeader(); h != "" {
		c.headerName(path+".outputPayloadToHeader", h)
	}
	seen := map[string]bool{}
	for i, ch := range r.GetOutputClaimToHeaders() {
		p := fmt.Sprintf("%s.outputClaimToHeaders[%d]", path, i)
		c.headerName(p+".header", ch.GetHeader())
		if ch.GetClaim() == "" {
			c.add(p+".claim", "claim is required")
		}
		if h := strings.ToLower(ch.GetHeader()); seen[h] {
			c.add(p+".header", "header %q is set twice", clip(ch.GetHeader()))
		} else {
			seen[h] = true
		}
	}
	if t := r.GetTimeout(); t != nil && t.AsDuration() <= 0 {
		c.add(path+".timeout", "must be positive")
	}
}

// ---- AuthorizationPolicy ----

func (c *checker) authorizationPolicy(ap *securityv1.AuthorizationPolicy) {
	c.workloadSelector("spec.selector", ap.GetSelector())
	c.targetRefs("spec", ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs())
	custom := ap.GetAction() == securityv1.AuthorizationPolicy_CUSTOM
	switch {
	case custom && ap.GetProvider().GetName() == "":
		c.add("spec.provider.name", "action CUSTOM needs a provider name (a meshConfig extensionProvider)")
	case !custom && ap.GetProvider() != nil:
		c.add("spec.provider", "provider is only allowed with action CUSTOM")
	}
	for i, r := range ap.GetRules() {
		path := fmt.Sprintf("spec.rules[%d]", i)
		if r == nil {
			continue
		}
		for j, f := range r.GetFrom() {
			fp := fmt.Sprintf("%s.from[%d].source", path, j)
			if f.GetSource() == nil {
				c.add(fp, "source must not be empty")
				continue
			}
			c.source(fp, f.GetSource(), custom)
		}
		for j, t := range r.GetTo() {
			tp := fmt.Sprintf("%s.to[%d].operation", path, j)
			if t.GetOperation() == nil {
				c.add(tp, "operation must not be empty")
				continue
			}
			c.operation(tp, t.GetOperation())
		}
		for j, w := range r.GetWhen() {
			c.condition(fmt.Sprintf("%s.when[%d]", path, j), w, custom)
		}
	}
}

func (c *checker) source(path string, s *securityv1.Source, custom bool) {
	if proto.Equal(s, &securityv1.Source{}) {
		c.add(path, "source must not be empty")
		return
	}
	c.matchValues(path+".principals", s.GetPrincipals())
	c.matchValues(path+".notPrincipals", s.GetNotPrincipals())
	c.matchValues(path+".requestPrincipals", s.GetRequestPrincipals())
	c.matchValues(path+".notRequestPrincipals", s.GetNotRequestPrincipals())
	c.matchValues(path+".namespaces", s.GetNamespaces())
	c.matchValues(path+".notNamespaces", s.GetNotNamespaces())
	c.ipBlocks(path+".ipBlocks", s.GetIpBlocks())
	c.ipBlocks(path+".notIpBlocks", s.GetNotIpBlocks())
	c.ipBlocks(path+".remoteIpBlocks", s.GetRemoteIpBlocks())
	c.ipBlocks(path+".notRemoteIpBlocks", s.GetNotRemoteIpBlocks())
	c.serviceAccounts(path+".serviceAccounts", s.GetServiceAccounts())
	c.serviceAccounts(path+".notServiceAccounts", s.GetNotServiceAccounts())
	if len(s.GetServiceAccounts()) > 0 && (len(s.GetPrincipals()) > 0 || len(s.GetNamespaces()) > 0) {
		c.add(path+".serviceAccounts", "cannot be set with principals or namespaces")
	}
	c.matchValues(path+".trustDomains", s.GetTrustDomains())
	c.matchValues(path+".notTrustDomains", s.GetNotTrustDomains())
	if custom && (len(s.GetRequestPrincipals()) > 0 || len(s.GetNotRequestPrincipals()) > 0) {
		// Istio: the CUSTOM filter runs before jwt_authn results are usable.
		c.add(path+".requestPrincipals", "requestPrincipals is not supported with action CUSTOM")
	}
}

// serviceAccounts checks Istio's "NAMESPACE/SERVICE_ACCOUNT" or
// "SERVICE_ACCOUNT" values: no wildcard, at most 16 of at most 320 bytes.
func (c *checker) serviceAccounts(path string, vs []string) {
	if len(vs) > 16 {
		c.add(path, "%d values: at most 16", len(vs))
	}
	for i, v := range vs {
		p := fmt.Sprintf("%s[%d]", path, i)
		ns, sa, hasNS := strings.Cut(v, "/")
		if !hasNS {
			ns, sa = "x", v
		}
		switch {
		case len(v) > 320:
			c.add(p, "longer than 320 bytes")
		case strings.Contains(v, "*"):
			c.add(p, "%q: no wildcard is allowed in a service account", clip(v))
		case ns == "" || sa == "" || strings.Contains(sa, "/"):
			c.add(p, "%q: want NAMESPACE/SERVICE_ACCOUNT or SERVICE_ACCOUNT", clip(v))
		}
	}
}

func (c *checker) operation(path string, o *securityv1.Operation) {
	if proto.Equal(o, &securityv1.Operation{}) {
		c.add(path, "operation must not be empty")
		return
	}
	c.matchValues(path+".hosts", o.GetHosts())
	c.matchValues(path+".notHosts", o.GetNotHosts())
	c.authzPorts(path+".ports", o.GetPorts())
	c.authzPorts(path+".notPorts", o.GetNotPorts())
	c.matchValues(path+".methods", o.GetMethods())
	c.matchValues(path+".notMethods", o.GetNotMethods())
	c.authzPaths(path+".paths", o.GetPaths())
	c.authzPaths(path+".notPaths", o.GetNotPaths())
}

// matchValues checks Istio's string forms: exact, "prefix*", "*suffix" or
// "*"; a "*" anywhere else is refused.
func (c *checker) matchValues(path string, vs []string) {
	for i, v := range vs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if v == "" {
			c.add(p, "must not be empty")
			continue
		}
		if inner := strings.Trim(v, "*"); strings.Contains(inner, "*") || strings.Count(v, "*") > 1 && v != "*" {
			c.add(p, "%q: \"*\" is allowed only alone, as a prefix or as a suffix", clip(v))
		}
	}
}

// authzPaths: like matchValues; paths must also start with "/" (or "*").
func (c *checker) authzPaths(path string, vs []string) {
	c.matchValues(path, vs)
	for i, v := range vs {
		if v != "" && !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%q must start with \"/\" or \"*\"", clip(v))
		}
	}
}

func (c *checker) authzPorts(path string, vs []string) {
	for i, v := range vs {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a port number (1-65535)", clip(v))
		}
	}
}

func (c *checker) ipBlocks(path string, vs []string) {
	for i, v := range vs {
		if !isIPOrCIDR(v) {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%q is not an IP address or CIDR block", clip(v))
		}
	}
}

// conditionKeys are Istio's authorization "when" keys with a fixed name;
// request.headers[NAME] and request.auth.claims[NAME] carry a bracketed
// suffix. Istio's experimental.envoy.filters.* keys are not supported.
var conditionKeys = map[string]bool{
	"source.ip": true, "remote.ip": true, "source.namespace": true, "source.principal": true,
	"request.auth.principal": true, "request.auth.audiences": true, "request.auth.presenter": true,
	"destination.ip": true, "destination.port": true, "connection.sni": true,
}

func (c *checker) condition(path string, cond *securityv1.Condition, custom bool) {
	key := cond.GetKey()
	switch {
	case key == "":
		c.add(path+".key", "key is required")
	case conditionKeys[key]:
	case strings.HasPrefix(key, "request.headers["), strings.HasPrefix(key, "request.auth.claims["):
		open := strings.Index(key, "[")
		if !strings.HasSuffix(key, "]") || len(key) <= open+2 {
			c.add(path+".key", "%q: want %s[NAME]", clip(key), key[:open])
		}
	default:
		c.add(path+".key", "unknown key %q (Istio's keys: request.headers[NAME], source.ip, remote.ip, source.namespace, "+
			"source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, "+
			"request.auth.claims[NAME], destination.ip, destination.port, connection.sni)", clip(key))
		return
	}
	if len(cond.GetValues()) == 0 && len(cond.GetNotValues()) == 0 {
		c.add(path, "values or notValues is required")
	}
	switch key {
	case "source.ip", "remote.ip", "destination.ip":
		c.ipBlocks(path+".values", cond.GetValues())
		c.ipBlocks(path+".notValues", cond.GetNotValues())
	case "destination.port":
		c.authzPorts(path+".values", cond.GetValues())
		c.authzPorts(path+".notValues", cond.GetNotValues())
	}
	if custom && strings.HasPrefix(key, "request.auth.") {
		c.add(path+".key", "%q is not supported with action CUSTOM", clip(key))
	}
}
