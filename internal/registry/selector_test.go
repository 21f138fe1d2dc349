package registry

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

// TestWorkloadSelection pins which WorkloadEntries a ServiceEntry's
// workloadSelector picks: every selector label must match (metadata labels
// count, spec labels win), only in the ServiceEntry's namespace, and an
// empty selector picks every entry of the namespace.
func TestWorkloadSelection(t *testing.T) {
	wes := []*config.Resource{
		we("default", "a-v1", nil, &networkingv1.WorkloadEntry{Address: "127.0.0.1", Labels: map[string]string{"app": "a", "version": "v1"}}),
		we("default", "a-v2", nil, &networkingv1.WorkloadEntry{Address: "127.0.0.2", Labels: map[string]string{"app": "a", "version": "v2"}}),
		we("default", "b-v1", nil, &networkingv1.WorkloadEntry{Address: "127.0.0.3", Labels: map[string]string{"app": "b", "version": "v1"}}),
		we("default", "meta", map[string]string{"app": "a", "tier": "meta"}, &networkingv1.WorkloadEntry{Address: "127.0.0.4"}),
		we("default", "spec-wins", map[string]string{"app": "a"}, &networkingv1.WorkloadEntry{Address: "127.0.0.5", Labels: map[string]string{"app": "z"}}),
		we("other", "a-other", nil, &networkingv1.WorkloadEntry{Address: "127.0.0.6", Labels: map[string]string{"app": "a", "version": "v1"}}),
	}
	tests := []struct {
		name     string
		ns       string
		selector map[string]string
		want     []string
	}{
		{"one label", "default", map[string]string{"app": "a"}, []string{"a-v1", "a-v2", "meta"}},
		{"every label must match", "default", map[string]string{"app": "a", "version": "v1"}, []string{"a-v1"}},
		{"second label alone", "default", map[string]string{"version": "v1"}, []string{"a-v1", "b-v1"}},
		{"metadata labels select", "default", map[string]string{"tier": "meta"}, []string{"meta"}},
		{"spec labels win over metadata", "default", map[string]string{"app": "z"}, []string{"spec-wins"}},
		{"no match", "default", map[string]string{"app": "a", "version": "v9"}, nil},
		{"empty selector picks the namespace", "other", map[string]string{}, []string{"a-other"}},
		{"other namespace only", "other", map[string]string{"app": "a"}, []string{"a-other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := se(tt.ns, "svc", &networkingv1.ServiceEntry{
				Hosts:            []string{"svc.example"},
				Ports:            []*networkingv1.ServicePort{{Number: 80, Name: "http"}},
				Resolution:       networkingv1.ServiceEntry_STATIC,
				WorkloadSelector: &networkingv1.WorkloadSelector{Labels: tt.selector},
			})
			reg := NewServiceEntrySource().Registry(config.NewSet(append([]*config.Resource{svc}, wes...)))
			var got []string
			for _, e := range reg.EndpointsOf(reg.Services[0]) {
				got = append(got, e.WorkloadName)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("selected workloads (-want +got):\n%s", diff)
			}
		})
	}
}
