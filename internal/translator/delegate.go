package translator

import (
	"maps"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// httpRule is one http rule of a VirtualService ready to translate.
type httpRule struct {
	route   *networkingv1.HTTPRoute
	ns      string // where the rule's short destination hosts resolve (the delegate's namespace for merged rules)
	matchNS string // where its match gateways resolve (the root's)
}

// httpRules returns the http rules of VirtualService r with delegates merged
// in as Istio does (pilot's mergeVirtualServicesIfNeeded): a rule with
// delegate {name, namespace} is replaced by the delegate's rules, each
// merged with it (mergeHTTPRoute); a delegate that does not exist, has
// hosts (so is not a delegate) or is not exported to the root's namespace
// drops the rule; a delegate rule whose matches conflict with the root's is
// dropped. Delegates do not nest. The resource's spec is never modified.
func (b *builder) httpRules(r *config.Resource) []httpRule {
	vs := r.Spec.(*networkingv1.VirtualService)
	out := make([]httpRule, 0, len(vs.GetHttp()))
	for _, hr := range vs.GetHttp() {
		d := hr.GetDelegate()
		if d == nil {
			out = append(out, httpRule{route: hr, ns: r.Meta.Namespace, matchNS: r.Meta.Namespace})
			continue
		}
		dns := d.GetNamespace()
		if dns == "" {
			dns = r.Meta.Namespace
		}
		dr := b.snap.Config.Get(config.Key{Kind: config.KindVirtualService, Namespace: dns, Name: d.GetName()})
		if dr == nil {
			continue
		}
		dvs, ok := dr.Spec.(*networkingv1.VirtualService)
		if !ok || len(dvs.GetHosts()) > 0 || !exportedToNS(dvs.GetExportTo(), dns, r.Meta.Namespace) {
			continue
		}
		for _, sub := range dvs.GetHttp() {
			if sub.GetDelegate() != nil {
				continue // Istio supports one level of delegation
			}
			if merged := mergeHTTPRoute(hr, sub); merged != nil {
				out = append(out, httpRule{route: merged, ns: dns, matchNS: r.Meta.Namespace})
			}
		}
	}
	return out
}

// exportedToNS reports whether a resource of namespace owner with exportTo
// is visible in namespace ns.
func exportedToNS(exportTo []string, owner, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if owner == ns {
				return true
			}
		default:
			if e == ns {
				return true
			}
		}
	}
	return false
}

// mergeHTTPRoute merges delegate rule sub under root rule root (Istio's
// mergeHTTPRoute): matches are intersected, and the root's rewrite, timeout,
// retries, fault, mirror, corsPolicy and headers apply where the delegate
// sets none. nil when the matches conflict.
func mergeHTTPRoute(root, sub *networkingv1.HTTPRoute) *networkingv1.HTTPRoute {
	matches, conflict := mergeHTTPMatches(root.GetMatch(), sub.GetMatch())
	if conflict {
		return nil
	}
	out := proto.Clone(sub).(*networkingv1.HTTPRoute)
	out.Match = matches
	switch {
	case out.Name == "":
		out.Name = root.GetName()
	case root.GetName() != "":
		out.Name = root.GetName() + "-" + out.Name
	}
	if out.Rewrite == nil {
		out.Rewrite = root.GetRewrite()
	}
	if out.Timeout == nil {
		out.Timeout = root.GetTimeout()
	}
	if out.Retries == nil {
		out.Retries = root.GetRetries()
	}
	if out.Fault == nil {
		out.Fault = root.GetFault()
	}
	if out.Mirror == nil {
		out.Mirror = root.GetMirror()
	}
	if out.MirrorPercentage == nil {
		out.MirrorPercentage = root.GetMirrorPercentage()
	}
	if out.CorsPolicy == nil {
		out.CorsPolicy = root.GetCorsPolicy()
	}
	if out.Headers == nil {
		out.Headers = root.GetHeaders()
	}
	return out
}

// mergeHTTPMatches is Istio's mergeHTTPMatchRequests: every delegate match
// must fit inside at least one root match; each fitting pair becomes one
// merged match.
func mergeHTTPMatches(root, sub []*networkingv1.HTTPMatchRequest) ([]*networkingv1.HTTPMatchRequest, bool) {
	if len(root) == 0 {
		return sub, false
	}
	if len(sub) == 0 {
		return root, false
	}
	var out []*networkingv1.HTTPMatchRequest
	for _, s := range sub {
		found := false
		for _, r := range root {
			if matchConflict(r, s) {
				continue
			}
			out = append(out, mergeHTTPMatch(r, s))
			found = true
		}
		if !found {
			return nil, true
		}
	}
	return out, len(out) == 0
}

func mergeHTTPMatch(root, sub *networkingv1.HTTPMatchRequest) *networkingv1.HTTPMatchRequest {
	out := proto.Clone(sub).(*networkingv1.HTTPMatchRequest)
	switch {
	case out.Name == "":
		out.Name = root.GetName()
	case root.GetName() != "":
		out.Name = root.GetName() + "-" + out.Name
	}
	if out.Uri == nil {
		out.Uri = root.GetUri()
	}
	if out.Scheme == nil {
		out.Scheme = root.GetScheme()
	}
	if out.Method == nil {
		out.Method = root.GetMethod()
	}
	if out.Authority == nil {
		out.Authority = root.GetAuthority()
	}
	out.Headers = unionMap(root.GetHeaders(), sub.GetHeaders())
	out.WithoutHeaders = unionMap(root.GetWithoutHeaders(), sub.GetWithoutHeaders())
	out.QueryParams = unionMap(root.GetQueryParams(), sub.GetQueryParams())
	out.SourceLabels = unionMap(root.GetSourceLabels(), sub.GetSourceLabels())
	if out.Port == 0 {
		out.Port = root.GetPort()
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = root.GetSourceNamespace()
	}
	if len(out.Gateways) == 0 {
		out.Gateways = root.GetGateways()
	}
	return out
}

// unionMap is a ∪ b, b winning; nil when both are empty.
func unionMap[V any](a, b map[string]V) map[string]V {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]V{}
	}
	maps.Copy(out, b)
	return out
}

// matchConflict is Istio's hasConflict: true when a delegate match cannot
// lie within the root match.
func matchConflict(root, leaf *networkingv1.HTTPMatchRequest) bool {
	roots := []*networkingv1.StringMatch{root.GetUri(), root.GetScheme(), root.GetMethod(), root.GetAuthority()}
	leaves := []*networkingv1.StringMatch{leaf.GetUri(), leaf.GetScheme(), leaf.GetMethod(), leaf.GetAuthority()}
	for i := range roots {
		if stringMatchConflict(roots[i], leaves[i]) {
			return true
		}
	}
	for k, v := range leaf.GetHeaders() {
		if stringMatchConflict(root.GetHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetWithoutHeaders() {
		if stringMatchConflict(root.GetWithoutHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetQueryParams() {
		if stringMatchConflict(root.GetQueryParams()[k], v) {
			return true
		}
	}
	if root.GetIgnoreUriCase() != leaf.GetIgnoreUriCase() {
		return true
	}
	if root.GetPort() > 0 && leaf.GetPort() > 0 && root.GetPort() != leaf.GetPort() {
		return true
	}
	if root.GetSourceNamespace() != "" && leaf.GetSourceNamespace() != root.GetSourceNamespace() {
		return true
	}
	for k, v := range leaf.GetSourceLabels() {
		if rv, ok := root.GetSourceLabels()[k]; ok && rv != v {
			return true
		}
	}
	if len(root.GetGateways()) > 0 && len(leaf.GetGateways()) > 0 {
		rootGWs := map[string]bool{}
		for _, g := range root.GetGateways() {
			rootGWs[g] = true
		}
		for _, g := range leaf.GetGateways() {
			if !rootGWs[g] {
				return true
			}
		}
	}
	return false
}

// stringMatchConflict is Istio's: no conflict when either side is unset; a
// regex on either side conflicts with any other match; an exact root needs
// the same exact leaf; a prefix root needs a leaf prefix or exact under it.
func stringMatchConflict(root, leaf *networkingv1.StringMatch) bool {
	if root == nil || leaf == nil {
		return false
	}
	if root.GetRegex() != "" && (leaf.GetRegex() != "" || leaf.GetPrefix() != "" || leaf.GetExact() != "") {
		return true
	}
	if leaf.GetRegex() != "" && (root.GetRegex() != "" || root.GetPrefix() != "" || root.GetExact() != "") {
		return true
	}
	if exact := root.GetExact(); exact != "" {
		return leaf.GetPrefix() != "" || leaf.GetExact() != exact
	}
	if prefix := root.GetPrefix(); prefix != "" {
		if leaf.GetPrefix() != "" {
			return !strings.HasPrefix(leaf.GetPrefix(), prefix)
		}
		if leaf.GetExact() != "" {
			return !strings.HasPrefix(leaf.GetExact(), prefix)
		}
	}
	return true
}
