package compile

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/authz"
)

// networkRBAC is an Istio-shaped envoy.filters.network.rbac with one
// policy matching everything.
func networkRBAC(t testing.TB, prefix string, action rbacv3.RBAC_Action) *listenerv3.Filter {
	return filter(t, "envoy.filters.network.rbac", &netrbacv3.RBAC{
		StatPrefix: prefix,
		Rules: &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{"ns[default]-policy[p]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		}}},
	})
}

// TestParseListenerNetworkRBACChain: Istio puts up to four network rbac
// filters on one TCP chain (AUDIT, CUSTOM, DENY, ALLOW); all are kept, in
// order.
func TestParseListenerNetworkRBACChain(t *testing.T) {
	tcp := filter(t, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{
		StatPrefix: "c", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"},
	})
	tests := []struct {
		name        string
		filters     []*listenerv3.Filter
		wantActions []authz.Action
		wantPrefix  []string
	}{
		{"none", []*listenerv3.Filter{tcp}, nil, nil},
		{"deny then allow", []*listenerv3.Filter{
			networkRBAC(t, "tcp.deny.", rbacv3.RBAC_DENY), networkRBAC(t, "tcp.", rbacv3.RBAC_ALLOW), tcp,
		}, []authz.Action{authz.Deny, authz.Allow}, []string{"tcp.deny.", "tcp."}},
		{"audit, deny, allow", []*listenerv3.Filter{
			networkRBAC(t, "tcp.audit.", rbacv3.RBAC_LOG), networkRBAC(t, "tcp.deny.", rbacv3.RBAC_DENY),
			networkRBAC(t, "tcp.", rbacv3.RBAC_ALLOW), tcp,
		}, []authz.Action{authz.Log, authz.Deny, authz.Allow}, []string{"tcp.audit.", "tcp.deny.", "tcp."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseListener(listener("l", "127.0.0.1", 9000, corev3.TrafficDirection_INBOUND, tc.filters...))
			if err != nil {
				t.Fatal(err)
			}
			var actions []authz.Action
			var prefixes []string
			for _, r := range l.Runtime.FilterChains[0].TCP.RBAC {
				actions = append(actions, r.Rules.Action())
				prefixes = append(prefixes, r.StatPrefix)
			}
			if diff := cmp.Diff(tc.wantActions, actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPrefix, prefixes); diff != "" {
				t.Errorf("stat prefixes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseListenerNetworkRBACOnHTTPChain(t *testing.T) {
	hcm := filter(t, "envoy.filters.network.http_connection_manager", rdsHCM(t, "r"))
	t.Run("one is kept", func(t *testing.T) {
		l, err := ParseListener(listener("l", "127.0.0.1", 80, corev3.TrafficDirection_INBOUND,
			networkRBAC(t, "n.", rbacv3.RBAC_DENY), hcm))
		if err != nil {
			t.Fatal(err)
		}
		if r := l.Runtime.FilterChains[0].HTTP.NetworkRBAC; r == nil || r.StatPrefix != "n." {
			t.Errorf("NetworkRBAC = %+v, want the filter with stat prefix n.", r)
		}
	})
	t.Run("two are refused", func(t *testing.T) {
		_, err := ParseListener(listener("l", "127.0.0.1", 80, corev3.TrafficDirection_INBOUND,
			networkRBAC(t, "a.", rbacv3.RBAC_DENY), networkRBAC(t, "b.", rbacv3.RBAC_ALLOW), hcm))
		want := `listener "l": filter_chains[0].filters: 2 envoy.filters.network.rbac before an http_connection_manager: unsupported, want at most one`
		if err == nil || err.Error() != want {
			t.Errorf("error = %v\nwant %s", err, want)
		}
	})
}
