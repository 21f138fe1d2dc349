package translator

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/gatewayapi"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// gatewayTargetDocs are a Gateway API Gateway "gw" in namespace app, the
// workload that serves it (Istio's gateway-name label) and two policies
// that target it: a DENY-all AuthorizationPolicy and a
// RequestAuthentication. Without targetRefs both would apply to every
// workload of namespace app.
const gatewayTargetDocs = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: app}
spec: {address: 127.0.8.20, labels: {gateway.networking.k8s.io/gateway-name: gw}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: app}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 8081, protocol: HTTP}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-deny, namespace: app}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gw-jwt, namespace: app}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
  jwtRules: [{issuer: "https://gw-issuer.example", jwksUri: "https://gw-issuer.example/jwks"}]
`

// TestPolicyTargetRefs checks that policies with targetRefs apply to the
// workloads serving the targeted Gateway, and only to them.
func TestPolicyTargetRefs(t *testing.T) {
	snap := secSnapshot(t, gatewayTargetDocs, nil)
	set, problems := gatewayapi.Apply(snap.Config, gatewayapi.Options{})
	if len(problems) > 0 {
		t.Fatalf("gateway api: %v", problems)
	}
	snap.Config, snap.Registry = set, registry.NewServiceEntrySource().Registry(set)

	dump := func(p Proxy) string {
		var b strings.Builder
		for _, l := range Translate(snap, p).Listeners {
			j, err := protojson.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(j)
		}
		return b.String()
	}
	gw := dump(Proxy{ID: "router~127.0.8.20~gw.app~app.svc.cluster.local", Type: Router, Namespace: "app", Name: "gw", Address: "127.0.8.20"})
	for _, want := range []string{"ns[app]-policy[gw-deny]-rule[0]", "https://gw-issuer.example"} {
		if !strings.Contains(gw, want) {
			t.Errorf("the targeted gateway's listeners lack %q", want)
		}
	}
	web := dump(webProxy())
	for _, unwanted := range []string{"gw-deny", "https://gw-issuer.example"} {
		if strings.Contains(web, unwanted) {
			t.Errorf("a sidecar of the policy's namespace got %q, which targets only the Gateway", unwanted)
		}
	}
	if got := simulateAuthz(t, snap, authzReq{peer: idClient}); got != allowed {
		t.Errorf("sidecar in the policy's namespace: %s, want %s (the DENY targets the Gateway)", got, allowed)
	}
}
