package analyze

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/config"
)

// mesh is reviews (v1, v2 workloads) and ratings, with a DestinationRule
// for reviews.
const mesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.10.3, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.10.4, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 127.0.10.6, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

func load(t *testing.T, yaml string) *config.Set {
	t.Helper()
	rs, _, errs := config.Parse("mesh.yaml", []byte(yaml))
	for _, e := range errs {
		t.Fatalf("config: %v", e)
	}
	return config.NewSet(rs)
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  []string // "CODE Kind ns/name field"
	}{
		{"clean mesh", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
`, nil},
		{"subset without DestinationRule", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings, subset: v1}}]}]
`, []string{"TRL0101 VirtualService default/ratings spec.http[0].route[0].destination.subset"}},
		{"subset missing from the DestinationRule", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v3}}]}]
`, []string{"TRL0101 VirtualService default/reviews spec.http[0].route[0].destination.subset"}},
		{"route to an unknown host", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reveiws}}]}]
`, []string{"TRL0102 VirtualService default/reviews spec.http[0].route[0].destination.host"}},
		{"two VirtualServices for one host", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews}}]}]
`, []string{"TRL0103 VirtualService default/b spec.hosts[0]"}},
		{"same host on different gateways is fine", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews}}]}]
`, nil},
		{"rule after a catch-all never matches", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
`, []string{"TRL0104 VirtualService default/reviews spec.http[1]", "TRL0104 VirtualService default/reviews spec.http[2]"}},
		{"a narrower first rule is fine", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews}}]
`, nil},
		{"gateway host with no route", `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [bookinfo.example.com, shop.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.example.com]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews}}]}]
`, []string{"TRL0105 Gateway default/ingress spec.servers[0].hosts[1]"}},
		{"single destination with a partial weight", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}, weight: 50}]}]
`, []string{"TRL0106 VirtualService default/reviews spec.http[0].route"}},
		{"subset selecting no workload", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v9, labels: {version: v9}}
`, []string{"TRL0107 DestinationRule default/ratings spec.subsets[1].labels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := load(t, mesh+"---\n"+strings.TrimPrefix(tt.extra, "\n"))
			var got []string
			for _, f := range Analyze(set, nil, Options{}) {
				got = append(got, string(f.Code)+" "+f.Resource.String()+" "+f.Field)
				if f.Fix == "" || f.Message == "" {
					t.Errorf("%s: finding without message or fix: %+v", f.Code, f)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{
		Code: CodeSubsetNoRule, Severity: Error,
		Resource: config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "ratings"},
		Origin:   config.Origin{File: "vs.yaml", Line: 3},
		Field:    "spec.http[0].route[0].destination.subset",
		Message:  `subset "v1" of "ratings.default.svc.cluster.local" has no DestinationRule`,
		Fix:      "add a DestinationRule",
	}
	want := `Error [TRL0101] vs.yaml:3: VirtualService default/ratings: spec.http[0].route[0].destination.subset: subset "v1" of "ratings.default.svc.cluster.local" has no DestinationRule (fix: add a DestinationRule)`
	if got := f.String(); got != want {
		t.Errorf("String()\n got %s\nwant %s", got, want)
	}
}
