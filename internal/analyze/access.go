package analyze

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	securityv1 "istio.io/api/security/v1"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// Authorization codes (issue 4, point 8): found by running each workload's
// inbound RBAC, as trellisd emits it, through the proxy's engine.
const (
	CodeLockedOut      Code = "TRL0201" // a workload accepts traffic from no workload in the mesh
	CodePolicyNoTarget Code = "TRL0202" // an AuthorizationPolicy selects no workload
)

// Names of the filters whose RBAC the access check runs.
const (
	httpRBACFilter    = "envoy.filters.http.rbac"
	networkRBACFilter = "envoy.filters.network.rbac"
	hcmFilter         = "envoy.filters.network.http_connection_manager"
	extAuthzFilter    = "envoy.filters.http.ext_authz"
	tlsModeLabel      = "security.istio.io/tlsMode"
)

// WorkloadRef names a workload (a WorkloadEntry) as NAMESPACE/NAME.
type WorkloadRef struct{ Namespace, Name string }

func (w WorkloadRef) String() string { return w.Namespace + "/" + w.Name }

// ParseWorkloadRef parses NAMESPACE/NAME, or NAME in namespace "default".
func ParseWorkloadRef(s string) (WorkloadRef, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = "default", s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return WorkloadRef{}, fmt.Errorf("parse workload %q: want NAMESPACE/NAME", s)
	}
	return WorkloadRef{Namespace: ns, Name: name}, nil
}

// AccessQuery is one call to check: Source calling Destination on Port (0:
// every inbound port) with Method and Path ("GET" and "/" when empty).
type AccessQuery struct {
	Source, Destination WorkloadRef
	Port                uint32
	Method, Path        string
}

// AccessDecision is the verdict for one destination port.
type AccessDecision struct {
	Port    uint32
	Allowed bool
	// Policy is the deciding AuthorizationPolicy as NAMESPACE/NAME: the
	// ALLOW policy that matched or the DENY policy that did; "" when none
	// decided (no policy applies, or no ALLOW policy matched).
	Policy string
	// Reason says why in one line.
	Reason string
}

func (d AccessDecision) String() string {
	verdict := "DENY"
	if d.Allowed {
		verdict = "ALLOW"
	}
	return fmt.Sprintf("%s port %d: %s", verdict, d.Port, d.Reason)
}

// Access answers "may workload A call workload B" from the configuration
// alone: each destination's inbound listeners are translated as trellisd
// would send them to its sidecar, and their RBAC filters are evaluated with
// internal/authz, the engine the proxy runs. It is not safe for concurrent
// use (it caches translations).
type Access struct {
	snap    *snapshot.Snapshot
	inbound map[WorkloadRef][]inboundPort
}

// inboundPort is one inbound listener's RBAC: for mTLS and for plain-text
// callers (nil when the port refuses that kind, as STRICT refuses plain text).
type inboundPort struct {
	port       uint32
	mtls, text *chainRBAC
}

// chainRBAC is one filter chain's RBAC filters in the order they run.
type chainRBAC struct {
	http     bool
	policies []*authz.Policy
	custom   bool // an ext_authz filter runs too (CUSTOM policies)
}

// NewAccess prepares checks against snap (its Config, Registry and Mesh).
func NewAccess(snap *snapshot.Snapshot) *Access {
	return &Access{snap: snap, inbound: map[WorkloadRef][]inboundPort{}}
}

// Check decides q for each matching inbound port of the destination.
func (a *Access) Check(q AccessQuery) ([]AccessDecision, error) {
	src := a.snap.Registry.Workload(q.Source.Namespace, q.Source.Name)
	if src == nil {
		return nil, fmt.Errorf("check access: unknown source workload %s", q.Source)
	}
	dst := a.snap.Registry.Workload(q.Destination.Namespace, q.Destination.Name)
	if dst == nil {
		return nil, fmt.Errorf("check access: unknown destination workload %s", q.Destination)
	}
	ports, err := a.ports(dst)
	if err != nil {
		return nil, err
	}
	var out []AccessDecision
	for _, p := range ports {
		if q.Port == 0 || q.Port == p.port {
			out = append(out, a.decide(src, dst, p, q.Method, q.Path))
		}
	}
	if len(out) == 0 {
		have := make([]string, len(ports))
		for i, p := range ports {
			have[i] = fmt.Sprint(p.port)
		}
		return nil, fmt.Errorf("check access: %s has no inbound port %d (inbound ports: %s)", q.Destination, q.Port, strings.Join(have, ", "))
	}
	return out, nil
}

// ports translates dst's sidecar config once and extracts its inbound RBAC.
func (a *Access) ports(dst *registry.Workload) ([]inboundPort, error) {
	ref := WorkloadRef{dst.Namespace, dst.Name}
	if ps, ok := a.inbound[ref]; ok {
		return ps, nil
	}
	res := translator.Translate(a.snap, translator.Proxy{Type: translator.Sidecar, Namespace: dst.Namespace, Name: dst.Name, Address: dst.Address})
	var out []inboundPort
	for _, name := range slices.Sorted(maps.Keys(res.Listeners)) {
		l, ok := res.Listeners[name].(*listenerv3.Listener)
		if !ok || !strings.HasPrefix(name, "inbound_") {
			continue
		}
		p := inboundPort{port: l.GetAddress().GetSocketAddress().GetPortValue()}
		for i, fc := range l.GetFilterChains() {
			c, err := parseChainRBAC(fc)
			if err != nil {
				return nil, fmt.Errorf("check access: listener %s filter_chains[%d]: %w", name, i, err)
			}
			if fc.GetFilterChainMatch().GetTransportProtocol() == "tls" {
				p.mtls = cmp.Or(p.mtls, c)
			} else {
				p.text = cmp.Or(p.text, c)
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y inboundPort) int { return cmp.Compare(x.port, y.port) })
	a.inbound[ref] = out
	return out, nil
}

func parseChainRBAC(fc *listenerv3.FilterChain) (*chainRBAC, error) {
	c := &chainRBAC{}
	for _, f := range fc.GetFilters() {
		switch f.GetName() {
		case networkRBACFilter:
			var m netrbacv3.RBAC
			if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
				return nil, fmt.Errorf("%s: %w", f.GetName(), err)
			}
			if err := c.add(m.GetRules()); err != nil {
				return nil, err
			}
		case hcmFilter:
			c.http = true
			var h hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
				return nil, fmt.Errorf("%s: %w", f.GetName(), err)
			}
			for _, hf := range h.GetHttpFilters() {
				switch hf.GetName() {
				case extAuthzFilter:
					c.custom = true
				case httpRBACFilter:
					var m httprbacv3.RBAC
					if err := hf.GetTypedConfig().UnmarshalTo(&m); err != nil {
						return nil, fmt.Errorf("%s: %w", hf.GetName(), err)
					}
					if err := c.add(m.GetRules()); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return c, nil
}

// add compiles rules (nil: the filter only shadows) into the chain.
func (c *chainRBAC) add(rules *rbacv3.RBAC) error {
	if rules == nil {
		return nil
	}
	p, err := authz.Compile(rules)
	if err != nil {
		return err
	}
	c.policies = append(c.policies, p)
	return nil
}

// decide runs src's call through dst's port p: over mTLS with src's SPIFFE
// identity when src has a sidecar (tlsMode istio), else in plain text.
func (a *Access) decide(src, dst *registry.Workload, p inboundPort, method, path string) AccessDecision {
	d := AccessDecision{Port: p.port}
	c := p.text
	req := &authz.Request{DestinationPort: uint16(p.port), Headers: http.Header{}}
	if ip, err := netip.ParseAddr(src.Address); err == nil {
		req.DirectRemoteIP = ip
	}
	if ip, err := netip.ParseAddr(dst.Address); err == nil {
		req.DestinationIP = ip
	}
	if src.Labels[tlsModeLabel] == "istio" {
		c = p.mtls
		req.Peer = &authz.Peer{URIs: []string{a.spiffeID(src)}}
	}
	if c == nil {
		if req.Peer == nil {
			d.Reason = "plain text refused: the port requires mutual TLS (PeerAuthentication STRICT) and the source has no sidecar"
		} else {
			d.Reason = "mutual TLS refused: the port accepts only plain text (PeerAuthentication DISABLE)"
		}
		return d
	}
	if c.http {
		req.HTTP = true
		req.Method, req.Path, req.Scheme = cmp.Or(method, "GET"), cmp.Or(path, "/"), "http"
		req.Host = fmt.Sprintf("%s:%d", dst.Address, p.port)
		if req.Peer != nil {
			req.Scheme = "https"
		}
	}
	var allowedBy string
	for _, pol := range c.policies {
		dec := pol.Evaluate(req)
		switch {
		case pol.Action() == authz.Log:
		case !dec.Allowed && pol.Action() == authz.Deny:
			d.Policy = policyRef(dec.Policy)
			d.Reason = "denied by DENY policy " + d.Policy
			return d
		case !dec.Allowed:
			d.Reason = "denied: no ALLOW policy matches"
			if names := policyRefs(pol.Names()); len(names) > 0 {
				d.Reason += " (ALLOW policies: " + strings.Join(names, ", ") + ")"
			}
			return d
		case pol.Action() == authz.Allow && dec.Matched:
			allowedBy = policyRef(dec.Policy)
		}
	}
	d.Allowed = true
	d.Policy = allowedBy
	d.Reason = "allowed: no ALLOW policy applies"
	if allowedBy != "" {
		d.Reason = "allowed by ALLOW policy " + allowedBy
	}
	if c.custom {
		d.Reason += "; CUSTOM policies are decided by the external authorizer at request time"
	}
	return d
}

// spiffeID is w's identity as its certificate carries it.
func (a *Access) spiffeID(w *registry.Workload) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", cmp.Or(a.snap.Mesh.TrustDomain, "cluster.local"), w.Namespace, cmp.Or(w.ServiceAccount, "default"))
}

// policyRef turns Istio's RBAC policy name ns[NS]-policy[NAME]-rule[I]
// into NS/NAME; other names are returned as they are.
func policyRef(rbacName string) string {
	rest, ok := strings.CutPrefix(rbacName, "ns[")
	if !ok {
		return rbacName
	}
	ns, rest, ok := strings.Cut(rest, "]-policy[")
	if !ok {
		return rbacName
	}
	i := strings.LastIndex(rest, "]-rule[")
	if i < 0 {
		return rbacName
	}
	return ns + "/" + rest[:i]
}

func policyRefs(names []string) []string {
	var out []string
	for _, n := range names {
		if r := policyRef(n); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Authorization reports workloads no other workload may call (TRL0201)
// and AuthorizationPolicies that select no workload (TRL0202). It
// translates every workload's config, so it costs about one trellisd push
// per workload; `trellis analyze` runs it, trellisd does not.
func Authorization(snap *snapshot.Snapshot) []Finding {
	var out []Finding
	out = append(out, unselectedPolicies(snap)...)
	a := NewAccess(snap)
	wls := slices.SortedFunc(maps.Values(snap.Registry.Workloads), func(x, y *registry.Workload) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	for _, dst := range wls {
		ports, err := a.ports(dst)
		if err != nil || len(ports) == 0 || len(wls) < 2 {
			continue
		}
		reachable := false
		for _, src := range wls {
			if src == dst {
				continue
			}
			for _, p := range ports {
				if a.decide(src, dst, p, "", "").Allowed {
					reachable = true
					break
				}
			}
			if reachable {
				break
			}
		}
		if reachable {
			continue
		}
		key := config.Key{Kind: config.KindWorkloadEntry, Namespace: dst.Namespace, Name: dst.Name}
		f := Finding{
			Code: CodeLockedOut, Severity: Warning, Resource: key,
			Message: fmt.Sprintf("workload %s/%s accepts traffic from no workload in the mesh (GET / with each workload's identity is denied on every inbound port)", dst.Namespace, dst.Name),
			Fix:     "add an ALLOW AuthorizationPolicy for its callers' principals, or remove the policy that locks it out; check with `trellis analyze DIR --check-access SRC DST`",
		}
		if r := snap.Config.Get(key); r != nil {
			f.Origin = r.Origin
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Origin.File, y.Origin.File), cmp.Compare(x.Origin.Line, y.Origin.Line),
			cmp.Compare(x.Resource.String(), y.Resource.String()), cmp.Compare(x.Code, y.Code))
	})
	return out
}

// unselectedPolicies finds AuthorizationPolicies whose scope (Istio's:
// the root namespace means every namespace) holds no workload.
func unselectedPolicies(snap *snapshot.Snapshot) []Finding {
	root := cmp.Or(snap.Mesh.RootNamespace, "istio-system")
	var out []Finding
	for _, r := range snap.Config.List(config.KindAuthorizationPolicy) {
		ap, ok := r.Spec.(*securityv1.AuthorizationPolicy)
		if !ok {
			continue
		}
		if len(ap.GetTargetRefs()) > 0 || ap.GetTargetRef() != nil {
			out = append(out, untargetedRefs(snap, r, ap)...)
			continue
		}
		sel := ap.GetSelector().GetMatchLabels()
		selected := false
		for _, w := range snap.Registry.Workloads {
			if (r.Meta.Namespace == root || w.Namespace == r.Meta.Namespace) && (len(sel) == 0 || registry.LabelsMatch(sel, w.Labels)) {
				selected = true
				break
			}
		}
		if selected {
			continue
		}
		f := Finding{Code: CodePolicyNoTarget, Severity: Warning, Resource: r.Key(), Origin: r.Origin,
			Fix: "fix spec.selector.matchLabels (or the namespace) so that it names the workloads to protect; as written it enforces nothing"}
		if len(sel) > 0 {
			f.Field = "spec.selector"
			f.Message = fmt.Sprintf("AuthorizationPolicy %s selects no workload: no workload in %s has labels %s", r.Meta.Name, scopeName(r.Meta.Namespace, root), labelString(sel))
		} else {
			f.Message = fmt.Sprintf("AuthorizationPolicy %s selects no workload: namespace %s has none", r.Meta.Name, r.Meta.Namespace)
		}
		out = append(out, f)
	}
	return out
}

// untargetedRefs finds the targetRefs of an AuthorizationPolicy that reach
// no workload: a Gateway that does not exist, that Trellis does not serve,
// or that no workload serves.
func untargetedRefs(snap *snapshot.Snapshot, r *config.Resource, ap *securityv1.AuthorizationPolicy) []Finding {
	var out []Finding
	for _, t := range config.PolicyTargets(ap.GetTargetRef(), ap.GetTargetRefs()) {
		f := "spec." + t.Field
		gw := r.Meta.Namespace + "/" + t.Ref.GetName()
		sels := snap.Config.GatewayWorkloadSelectors(r.Meta.Namespace, t.Ref.GetName())
		msg := ""
		switch {
		case len(sels) == 0:
			msg = fmt.Sprintf("AuthorizationPolicy %s targets Gateway %s, which Trellis does not serve (no such Gateway of class istio or trellis, or none of its listeners is served): it applies to no workload", r.Meta.Name, gw)
		case !slices.ContainsFunc(sels, func(sel map[string]string) bool { return selectsWorkload(snap, sel) }):
			msg = fmt.Sprintf("AuthorizationPolicy %s targets Gateway %s, which no workload serves (none has labels %s)", r.Meta.Name, gw, labelString(sels[0]))
		default:
			continue
		}
		out = append(out, Finding{Code: CodePolicyNoTarget, Severity: Warning, Resource: r.Key(), Origin: r.Origin, Field: f, Message: msg,
			Fix: "name a served Gateway of the policy's namespace, or deploy its workload; as written the policy enforces nothing"})
	}
	return out
}

// selectsWorkload reports whether some workload has labels sel.
func selectsWorkload(snap *snapshot.Snapshot, sel map[string]string) bool {
	for _, w := range snap.Registry.Workloads {
		if registry.LabelsMatch(sel, w.Labels) {
			return true
		}
	}
	return false
}

func scopeName(ns, root string) string {
	if ns == root {
		return "the mesh"
	}
	return "namespace " + ns
}

func labelString(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
