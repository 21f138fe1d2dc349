package analyze

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/examples/bookinfo"
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/gatewayapi"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// bookinfoSnapshot is the Bookinfo demo's default config plus extra YAML
// documents.
func bookinfoSnapshot(t testing.TB, extra ...string) *snapshot.Snapshot {
	t.Helper()
	names, err := fs.Glob(bookinfo.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var files []*config.File
	for _, n := range names {
		b, err := fs.ReadFile(bookinfo.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, config.ParseFile(n, b))
	}
	for i, e := range extra {
		files = append(files, config.ParseFile("extra"+string(rune('0'+i))+".yaml", []byte(e)))
	}
	set, errs := config.Merge(files)
	for _, e := range errs {
		t.Fatal(e)
	}
	set, problems := gatewayapi.Apply(set, gatewayapi.Options{}) // as trellisd and `trellis analyze` do
	for _, e := range problems {
		t.Fatal(e)
	}
	return &snapshot.Snapshot{Version: 1, Config: set, Registry: registry.NewServiceEntrySource().Registry(set), Mesh: snapshot.DefaultMesh()}
}

func TestCheckAccessBookinfo(t *testing.T) {
	a := NewAccess(bookinfoSnapshot(t))
	ref := func(s string) WorkloadRef {
		r, err := ParseWorkloadRef(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		src, dst     string
		method, path string
		want         AccessDecision
	}{
		{src: "default/reviews-v2", dst: "default/ratings-v1",
			want: AccessDecision{Port: 9080, Allowed: true, Policy: "default/ratings-viewer", Reason: "allowed by ALLOW policy default/ratings-viewer"}},
		{src: "default/reviews-v1", dst: "default/ratings-v1", method: "POST", path: "/ratings/0",
			want: AccessDecision{Port: 9080, Reason: "denied: no ALLOW policy matches (ALLOW policies: default/ratings-viewer)"}},
		{src: "default/ratings-v1", dst: "default/details-v1",
			want: AccessDecision{Port: 9080, Reason: "denied: no ALLOW policy matches (ALLOW policies: default/details-viewer)"}},
		{src: "default/productpage-v1", dst: "default/details-v1",
			want: AccessDecision{Port: 9080, Allowed: true, Policy: "default/details-viewer", Reason: "allowed by ALLOW policy default/details-viewer"}},
		{src: "istio-system/istio-ingressgateway", dst: "default/productpage-v1",
			want: AccessDecision{Port: 9080, Allowed: true, Policy: "default/productpage-viewer", Reason: "allowed by ALLOW policy default/productpage-viewer"}},
		{src: "istio-system/istio-ingressgateway", dst: "default/reviews-v3",
			want: AccessDecision{Port: 9080, Reason: "denied: no ALLOW policy matches (ALLOW policies: default/reviews-viewer)"}},
		{src: "default/productpage-v1", dst: "default/ratings-v1",
			want: AccessDecision{Port: 9080, Reason: "denied: no ALLOW policy matches (ALLOW policies: default/ratings-viewer)"}},
	}
	for _, tc := range tests {
		t.Run(tc.src+"→"+tc.dst, func(t *testing.T) {
			got, err := a.Check(AccessQuery{Source: ref(tc.src), Destination: ref(tc.dst), Method: tc.method, Path: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]AccessDecision{tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAccessErrors(t *testing.T) {
	a := NewAccess(bookinfoSnapshot(t))
	tests := []struct {
		name string
		q    AccessQuery
		want string
	}{
		{"unknown source", AccessQuery{Source: WorkloadRef{"default", "nope"}, Destination: WorkloadRef{"default", "ratings-v1"}},
			"check access: unknown source workload default/nope"},
		{"unknown destination", AccessQuery{Source: WorkloadRef{"default", "reviews-v1"}, Destination: WorkloadRef{"x", "y"}},
			"check access: unknown destination workload x/y"},
		{"no such port", AccessQuery{Source: WorkloadRef{"default", "reviews-v1"}, Destination: WorkloadRef{"default", "ratings-v1"}, Port: 1234},
			"check access: default/ratings-v1 has no inbound port 1234 (inbound ports: 9080)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Check(tc.q)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

// TestCheckAccessDenyAndPlainText: a DENY policy decides by name; a
// caller without a sidecar is refused by STRICT mTLS before any policy.
func TestCheckAccessDenyAndPlainText(t *testing.T) {
	const deny = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-posts, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy, namespace: default}
spec: {address: 127.0.10.50, labels: {app: legacy}, serviceAccount: legacy}
`
	a := NewAccess(bookinfoSnapshot(t, deny))
	reviews, ratings := WorkloadRef{"default", "reviews-v1"}, WorkloadRef{"default", "ratings-v1"}
	tests := []struct {
		name string
		q    AccessQuery
		want AccessDecision
	}{
		{"DENY wins over ALLOW", AccessQuery{Source: reviews, Destination: ratings, Method: "POST"},
			AccessDecision{Port: 9080, Policy: "default/no-posts", Reason: "denied by DENY policy default/no-posts"}},
		{"GET still allowed", AccessQuery{Source: reviews, Destination: ratings, Port: 9080},
			AccessDecision{Port: 9080, Allowed: true, Policy: "default/ratings-viewer", Reason: "allowed by ALLOW policy default/ratings-viewer"}},
		{"no sidecar against STRICT", AccessQuery{Source: WorkloadRef{"default", "legacy"}, Destination: ratings},
			AccessDecision{Port: 9080, Reason: "plain text refused: the port requires mutual TLS (PeerAuthentication STRICT) and the source has no sidecar"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Check(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]AccessDecision{tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// gatewayAPI is a Gateway API Gateway in default with one HTTP listener,
// deployed manually at address when it is not empty.
func gatewayAPI(name, address string) string {
	addr := ""
	if address != "" {
		addr = "\n  addresses: [{type: Hostname, value: " + address + "}]"
	}
	return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ` + name + `, namespace: default}
spec:
  gatewayClassName: istio` + addr + `
  listeners:
  - {name: http, port: 8090, protocol: HTTP}
`
}

// targeting is an AuthorizationPolicy in default that targets Gateway name.
func targeting(name string) string {
	return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-policy, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ` + name + `}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`
}

func TestAuthorizationFindings(t *testing.T) {
	const lockout = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-lockdown, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{from: [{source: {namespaces: [default]}}]}]
`
	const typo = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: raitngs-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: raitngs}}
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-reviews]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: empty}
spec: {rules: [{}]}
`
	tests := []struct {
		name  string
		extra []string
		want  []string // Code Resource
	}{
		{name: "bookinfo as shipped is clean", want: nil},
		{name: "a DENY that locks ratings out", extra: []string{lockout},
			want: []string{"TRL0201 WorkloadEntry default/ratings-v1"}},
		{name: "selector typo, empty namespace", extra: []string{typo},
			want: []string{"TRL0202 AuthorizationPolicy default/raitngs-viewer", "TRL0202 AuthorizationPolicy empty/allow-all"}},
		{name: "targets a Gateway that does not exist", extra: []string{targeting("nope")},
			want: []string{"TRL0202 AuthorizationPolicy default/gw-policy"}},
		{name: "targets a Gateway no workload serves", extra: []string{gatewayAPI("unserved", ""), targeting("unserved")},
			want: []string{"TRL0202 AuthorizationPolicy default/gw-policy"}},
		{name: "targets a served Gateway", extra: []string{gatewayAPI("edge", "istio-ingressgateway.istio-system.svc.cluster.local"), targeting("edge")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range Authorization(bookinfoSnapshot(t, tc.extra...)) {
				got = append(got, string(f.Code)+" "+f.Resource.String())
				if f.Severity != Warning || f.Fix == "" || !strings.Contains(f.Message, "no workload") {
					t.Errorf("finding %v: want a warning with a fix saying \"no workload\"", f)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWorkloadRef(t *testing.T) {
	tests := []struct {
		in      string
		want    WorkloadRef
		wantErr bool
	}{
		{"default/ratings-v1", WorkloadRef{"default", "ratings-v1"}, false},
		{"ratings-v1", WorkloadRef{"default", "ratings-v1"}, false},
		{"a/b/c", WorkloadRef{}, true},
		{"/x", WorkloadRef{}, true},
		{"x/", WorkloadRef{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseWorkloadRef(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseWorkloadRef(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func FuzzParseWorkloadRef(f *testing.F) {
	for _, s := range []string{"default/ratings-v1", "x", "a/b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseWorkloadRef(s)
		if err != nil {
			return
		}
		back, err := ParseWorkloadRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q → %v → %v, %v", s, r, back, err)
		}
	})
}

func TestPolicyRef(t *testing.T) {
	for in, want := range map[string]string{
		"ns[default]-policy[ratings-viewer]-rule[0]": "default/ratings-viewer",
		"ns[a]-policy[p]-rule[x]-rule[12]":           "a/p]-rule[x",
		"something-else":                             "something-else",
		"ns[a]-nopolicy":                             "ns[a]-nopolicy",
	} {
		if got := policyRef(in); got != want {
			t.Errorf("policyRef(%q) = %q, want %q", in, got, want)
		}
	}
}
