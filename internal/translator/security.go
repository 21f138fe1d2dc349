package translator

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	securityv1 "istio.io/api/security/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// Security translation (issue 4), in the order a request meets it:
//
//	client sidecar                         server sidecar (inbound_ADDR_PORT)
//	  outbound|P|S|H cluster                 1 tls_inspector; chains by transport_protocol
//	   transport_socket_matches  ── mTLS ──▶   "tls" (STRICT/PERMISSIVE), "raw_buffer" (PERMISSIVE)
//	   (security_mtls.go)                    2 HCM: path normalization, XFCC     security.go
//	                                         3 jwt_authn (RequestAuthentication)  security_jwt.go
//	                                         4 rbac LOG (AUDIT)                   security_authz.go
//	                                         5 rbac shadow + ext_authz (CUSTOM)   security_extauthz.go
//	                                         6 rbac DENY, 7 rbac ALLOW
//	                                         8 router ──▶ inbound|P|| ──▶ app
//
// TCP chains run network rbac (steps 4-7) before tcp_proxy. Gateways get
// steps 2-7 on their HCMs with XFCC SANITIZE_SET.

const nameRBACNetwork = "envoy.filters.network.rbac"

// httpSecurityFilters are the workload's HTTP authn/authz filters, to run
// before the router; nil when no policy applies.
func (b *builder) httpSecurityFilters() []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	add := func(name string, m proto.Message) {
		out = append(out, &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(m)}})
	}
	if jwt := b.jwtAuthn(); jwt != nil {
		add(nameJWTAuthn, jwt)
	}
	ap := b.authorizationPolicies()
	if len(ap.audit) > 0 {
		add(nameRBACHTTP, &rbachttpv3.RBAC{Rules: b.rbacRules(ap.audit, rbacv3.RBAC_LOG, false, "")})
	}
	if len(ap.custom) > 0 {
		if p, ok := b.customProvider(ap.custom); ok {
			add(nameRBACHTTP, &rbachttpv3.RBAC{
				ShadowRules:           b.rbacRules(ap.custom, rbacv3.RBAC_DENY, false, extAuthzPolicyPrefix),
				ShadowRulesStatPrefix: extAuthzStatPrefix,
			})
			add(nameExtAuthz, extAuthz(p))
		} else {
			// Unknown provider, or several for one workload: fail closed,
			// as Istio does, by denying what the CUSTOM rules match.
			add(nameRBACHTTP, &rbachttpv3.RBAC{Rules: b.rbacRules(ap.custom, rbacv3.RBAC_DENY, false, extAuthzPolicyPrefix)})
		}
	}
	if len(ap.deny) > 0 {
		add(nameRBACHTTP, &rbachttpv3.RBAC{Rules: b.rbacRules(ap.deny, rbacv3.RBAC_DENY, false, "")})
	}
	if len(ap.allow) > 0 {
		add(nameRBACHTTP, &rbachttpv3.RBAC{Rules: b.rbacRules(ap.allow, rbacv3.RBAC_ALLOW, false, "")})
	}
	return out
}

// customProvider is the one extension provider the workload's CUSTOM
// policies name; false when they name several or one the mesh lacks.
func (b *builder) customProvider(rs []*config.Resource) (snapshot.ExtAuthzProvider, bool) {
	name := ""
	for _, r := range rs {
		n := r.Spec.(*securityv1.AuthorizationPolicy).GetProvider().GetName()
		if name != "" && n != name {
			return snapshot.ExtAuthzProvider{}, false
		}
		name = n
	}
	for _, p := range b.mesh.ExtensionProviders {
		if p.Name == name {
			return p, true
		}
	}
	return snapshot.ExtAuthzProvider{}, false
}

// networkSecurityFilters are the network rbac filters of a TCP chain.
// CUSTOM is not offered over TCP: its rules deny (fail closed).
func (b *builder) networkSecurityFilters(statPrefix string) []*listenerv3.Filter {
	var out []*listenerv3.Filter
	add := func(rules *rbacv3.RBAC) {
		out = append(out, &listenerv3.Filter{
			Name:       nameRBACNetwork,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&rbacnetv3.RBAC{Rules: rules, StatPrefix: "tcp."})},
		})
	}
	ap := b.authorizationPolicies()
	if len(ap.audit) > 0 {
		add(b.rbacRules(ap.audit, rbacv3.RBAC_LOG, true, ""))
	}
	if len(ap.custom) > 0 {
		add(b.rbacRules(ap.custom, rbacv3.RBAC_DENY, true, extAuthzPolicyPrefix))
	}
	if len(ap.deny) > 0 {
		add(b.rbacRules(ap.deny, rbacv3.RBAC_DENY, true, ""))
	}
	if len(ap.allow) > 0 {
		add(b.rbacRules(ap.allow, rbacv3.RBAC_ALLOW, true, ""))
	}
	return out
}

// secureHCM applies the mesh's path normalization, the XFCC handling x,
// and puts the workload's security filters first, before cors, fault and
// the router, as Istio orders them.
func (b *builder) secureHCM(h *hcmv3.HttpConnectionManager, x xfcc) {
	pathNormalization(h, b.mesh.PathNormalization)
	h.ForwardClientCertDetails = x.mode
	h.SetCurrentClientCertDetails = x.current
	filters := b.httpSecurityFilters()
	if len(filters) == 0 {
		return
	}
	h.HttpFilters = slices.Insert(h.HttpFilters, 0, filters...)
}

// pathNormalization sets Istio's meshConfig.pathNormalization on an HCM:
//
//	NONE                     normalize_path: false
//	BASE (default)           normalize_path (RFC 3986: dot segments, %-decoding of unreserved)
//	MERGE_SLASHES            BASE + merge_slashes
//	DECODE_AND_MERGE_SLASHES MERGE_SLASHES + path_with_escaped_slashes_action UNESCAPE_AND_FORWARD
func pathNormalization(h *hcmv3.HttpConnectionManager, pn snapshot.PathNormalization) {
	h.NormalizePath = wrapperspb.Bool(pn != snapshot.PathNormalizationNone)
	h.MergeSlashes = pn == snapshot.PathNormalizationMergeSlashes || pn == snapshot.PathNormalizationDecodeAndMergeSlashes
	if pn == snapshot.PathNormalizationDecodeAndMergeSlashes {
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	}
}

// applySecurity finishes a translation: path normalization on every
// sidecar outbound HCM, and at gateways the full HCM treatment (XFCC
// SANITIZE_SET, authn/authz filters) plus network rbac on TCP chains.
// Sidecar inbound listeners were built secure by inboundListener.
func (b *builder) applySecurity() {
	if b.proxy.Type == Proxyless {
		return
	}
	for _, name := range sortedKeys(b.out.Listeners) {
		l, ok := b.out.Listeners[name].(*listenerv3.Listener)
		if !ok || l.GetApiListener() != nil {
			continue
		}
		if b.proxy.Type == Sidecar && l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			b.secureChain(fc)
		}
		if dfc := l.GetDefaultFilterChain(); dfc != nil {
			b.secureChain(dfc)
		}
	}
}

func (b *builder) secureChain(fc *listenerv3.FilterChain) {
	gateway := b.proxy.Type == Router
	for i := 0; i < len(fc.Filters); i++ {
		f := fc.Filters[i]
		switch f.GetName() {
		case nameHCM:
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig() == nil || anypb.UnmarshalTo(f.GetTypedConfig(), h, proto.UnmarshalOptions{}) != nil {
				continue
			}
			if gateway {
				b.secureHCM(h, xfccGateway)
			} else {
				pathNormalization(h, b.mesh.PathNormalization)
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: typed(h)}
		case nameTCPProxy:
			if !gateway || slices.ContainsFunc(fc.Filters, func(f *listenerv3.Filter) bool { return f.GetName() == nameRBACNetwork }) {
				continue
			}
			net := b.networkSecurityFilters(fc.GetName())
			fc.Filters = slices.Insert(fc.Filters, i, net...)
			i += len(net)
		}
	}
}
