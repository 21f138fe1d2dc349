package tcpproxy

import (
	"net"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/authz"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestAdmitRBAC runs Istio-shaped TCP policies (ALLOW by source IP, DENY
// by port) against a real loopback connection.
func TestAdmitRBAC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	defer server.Close()
	port := uint32(ln.Addr().(*net.TCPAddr).Port)

	compile := func(r *rbacv3.RBAC) *runtime.RBACFilter {
		p, err := authz.Compile(r)
		if err != nil {
			t.Fatal(err)
		}
		return &runtime.RBACFilter{Rules: p}
	}
	fromNet := func(cidr string, n uint32) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{AddressPrefix: cidr, PrefixLen: wrapperspb.UInt32(n)}}}
	}
	anyPerm := &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	allowLoopback := compile(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{fromNet("127.0.0.0", 8)}}}})
	denyPort := func(p uint32) *runtime.RBACFilter {
		return compile(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}},
				Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}}}})
	}
	audit := compile(&rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}}}})
	tests := []struct {
		name string
		rbac []*runtime.RBACFilter
		want bool
	}{
		{"no rbac", nil, true},
		{"allow loopback", []*runtime.RBACFilter{allowLoopback}, true},
		{"allow elsewhere only", []*runtime.RBACFilter{compile(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{fromNet("10.0.0.0", 8)}}}})}, false},
		{"deny this port", []*runtime.RBACFilter{denyPort(port)}, false},
		{"mtls required, plain text", []*runtime.RBACFilter{compile(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{
				Authenticated: &rbacv3.Principal_Authenticated{}}}}}}})}, false},
		// Istio's order on one chain: AUDIT, DENY, ALLOW; each must allow.
		{"audit, deny other port, allow", []*runtime.RBACFilter{audit, denyPort(port + 1), allowLoopback}, true},
		{"audit, deny this port, allow", []*runtime.RBACFilter{audit, denyPort(port), allowLoopback}, false},
		{"deny misses, allow misses", []*runtime.RBACFilter{denyPort(port + 1), compile(&rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW})}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AdmitRBAC(server, &runtime.TCPListener{RBAC: tc.rbac}); got != tc.want {
				t.Fatalf("AdmitRBAC = %v, want %v", got, tc.want)
			}
		})
	}
}
