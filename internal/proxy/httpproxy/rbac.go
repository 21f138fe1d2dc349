package httpproxy

import (
	"net/http"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Envoy's RBAC dynamic metadata (namespace FilterRBAC; shadow keys carry
// shadow_rules_stat_prefix in front).
const (
	mdShadowPolicy = "shadow_effective_policy_id"
	mdShadowResult = "shadow_engine_result"
	mdLogHint      = "access_log_hint"
	rbacDenied     = "RBAC: access denied"
)

// rbacFilter is envoy.filters.http.rbac.
type rbacFilter struct{ cfg *runtime.RBACFilter }

func (f *rbacFilter) decode(fx *filterCtx) bool {
	cfg := f.cfg
	if o := fx.override(); o != nil && o.RBAC != nil {
		cfg = o.RBAC
	}
	return rbacCheck(fx, cfg, false)
}

// rbacCheck evaluates cfg's shadow rules (recording the outcome in dynamic
// metadata) and then its rules; false when it denied and answered 403.
// network selects the network filter's view: no HTTP attributes.
func rbacCheck(fx *filterCtx, cfg *runtime.RBACFilter, network bool) bool {
	req := fx.authzRequest()
	if network {
		nreq := authz.Request{
			DirectRemoteIP: req.DirectRemoteIP, DestinationIP: req.DestinationIP,
			DestinationPort: req.DestinationPort, SNI: req.SNI, Peer: req.Peer,
		}
		req = &nreq
	}
	ns := runtime.FilterRBAC
	if network {
		ns = runtime.FilterNetworkRBAC
	}
	if cfg.Shadow != nil {
		d := cfg.Shadow.Evaluate(req)
		md := fx.metadata(ns)
		if d.Matched {
			md.Fields[cfg.ShadowStatPrefix+mdShadowPolicy] = structpb.NewStringValue(d.Policy)
		}
		result := "denied"
		if d.Allowed {
			result = "allowed"
		}
		md.Fields[cfg.ShadowStatPrefix+mdShadowResult] = structpb.NewStringValue(result)
		if !network {
			fx.req.Metadata = fx.md
		}
	}
	if cfg.Rules == nil {
		return true
	}
	d := cfg.Rules.Evaluate(req)
	if cfg.Rules.Action() == authz.Log && d.Matched {
		fx.metadata(ns).Fields[mdLogHint] = structpb.NewBoolValue(true)
	}
	if d.Allowed {
		return true
	}
	fx.h.log.Debug("rbac denied", "policy", d.Policy, "path", fx.r.URL.Path, "network", network)
	fx.reply(http.StatusForbidden, "", rbacDenied)
	return false
}

// AllowConnection evaluates a network RBAC filter for a connection without an HTTP
// request (tcp_proxy chains): the tcpproxy calls it on accept.
func AllowConnection(cfg *runtime.RBACFilter, req *authz.Request) bool {
	if cfg == nil {
		return true
	}
	if cfg.Shadow != nil {
		_ = cfg.Shadow.Evaluate(req) // recorded nowhere: TCP has no dynamic metadata consumer yet
	}
	return cfg.Rules == nil || cfg.Rules.Evaluate(req).Allowed
}
