package bookinfo

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// TestSecureCallGraph checks the default configuration allows exactly
// Bookinfo's call graph, over mTLS only: each callee's inbound listener as
// trellisd emits it, run through the proxy's RBAC engine.
func TestSecureCallGraph(t *testing.T) {
	set, errs := config.LoadDir(writeConfig(t))
	for _, e := range errs {
		t.Fatal(e)
	}
	snap := &snapshot.Snapshot{Version: 1, Config: set, Registry: registry.NewServiceEntrySource().Registry(set), Mesh: snapshot.DefaultMesh()}
	const td = "spiffe://cluster.local/ns/"
	gateway, productpage := td+"istio-system/sa/istio-ingressgateway-service-account", td+"default/sa/bookinfo-productpage"
	reviews, ratings := td+"default/sa/bookinfo-reviews", td+"default/sa/bookinfo-ratings"
	callees := map[string]struct{ name, addr string }{
		"productpage": {"productpage-v1", "127.0.10.1"}, "details": {"details-v1", "127.0.10.2"},
		"reviews": {"reviews-v1", "127.0.10.3"}, "ratings": {"ratings-v1", "127.0.10.6"},
	}
	cases := []struct {
		caller, callee string
		want           bool
	}{
		{gateway, "productpage", true}, {productpage, "details", true}, {productpage, "reviews", true}, {reviews, "ratings", true},
		{ratings, "details", false}, {productpage, "ratings", false}, {reviews, "details", false}, {gateway, "reviews", false},
		{ratings, "productpage", false},
	}
	for _, tc := range cases {
		t.Run(tc.caller+"→"+tc.callee, func(t *testing.T) {
			c := callees[tc.callee]
			res := translator.Translate(snap, translator.Proxy{Type: translator.Sidecar, Namespace: "default", Name: c.name, Address: c.addr})
			l := res.Listeners["inbound_"+c.addr+"_9080"].(*listenerv3.Listener)
			if n := len(l.GetFilterChains()); n != 1 || l.GetFilterChains()[0].GetFilterChainMatch().GetTransportProtocol() != "tls" {
				t.Fatalf("inbound has %d chains; want only the mTLS one (STRICT)", n)
			}
			h := &hcmv3.HttpConnectionManager{}
			if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			req := &authz.Request{HTTP: true, Method: "GET", Path: "/", Host: tc.callee + ":9080", Peer: &authz.Peer{URIs: []string{tc.caller}},
				DirectRemoteIP: netip.MustParseAddr("127.0.10.9"), DestinationPort: 9080}
			allowed := true
			for _, f := range h.GetHttpFilters() {
				if f.GetName() != "envoy.filters.http.rbac" {
					continue
				}
				cfg := &rbachttpv3.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				p, err := authz.Compile(cfg.GetRules())
				if err != nil {
					t.Fatal(err)
				}
				allowed = allowed && p.Evaluate(req).Allowed
			}
			if allowed != tc.want {
				t.Errorf("allowed = %v, want %v", allowed, tc.want)
			}
		})
	}
}
