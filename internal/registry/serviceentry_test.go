package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

func se(ns, name string, spec *networkingv1.ServiceEntry) *config.Resource {
	return &config.Resource{Kind: config.KindServiceEntry, Meta: config.Meta{Namespace: ns, Name: name}, Spec: spec}
}

func we(ns, name string, metaLabels map[string]string, spec *networkingv1.WorkloadEntry) *config.Resource {
	return &config.Resource{Kind: config.KindWorkloadEntry, Meta: config.Meta{Namespace: ns, Name: name, Labels: metaLabels}, Spec: spec}
}

func TestParseProtocol(t *testing.T) {
	tests := []struct {
		protocol, name string
		want           Protocol
	}{
		{"HTTP", "", ProtocolHTTP},
		{"http", "tcp-foo", ProtocolHTTP},
		{"", "http", ProtocolHTTP},
		{"", "http-web", ProtocolHTTP},
		{"", "http2-web", ProtocolHTTP2},
		{"", "grpc-api", ProtocolGRPC},
		{"GRPC-WEB", "", ProtocolHTTP},
		{"", "tcp-db", ProtocolTCP},
		{"", "tls-x", ProtocolTLS},
		{"", "https-x", ProtocolHTTPS},
		{"", "mongo", ProtocolMongo},
		{"MYSQL", "", ProtocolTCP},
		{"", "web", ProtocolUnknown},
		{"", "", ProtocolUnknown},
		{"UDP", "", ProtocolUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.protocol+"/"+tt.name, func(t *testing.T) {
			if got := ParseProtocol(tt.protocol, tt.name); got != tt.want {
				t.Errorf("ParseProtocol(%q, %q) = %s, want %s", tt.protocol, tt.name, got, tt.want)
			}
		})
	}
}

func TestServiceEntrySource(t *testing.T) {
	reviewsSE := se("default", "reviews", &networkingv1.ServiceEntry{
		Hosts:            []string{"reviews.default.svc.cluster.local", "reviews"},
		Ports:            []*networkingv1.ServicePort{{Number: 9443, Name: "grpc-x"}, {Number: 9080, Name: "http", TargetPort: 8080}},
		Resolution:       networkingv1.ServiceEntry_STATIC,
		Location:         networkingv1.ServiceEntry_MESH_INTERNAL,
		WorkloadSelector: &networkingv1.WorkloadSelector{Labels: map[string]string{"app": "reviews"}},
		ExportTo:         []string{"."},
	})
	v1 := we("default", "reviews-v1", map[string]string{"app": "reviews"}, &networkingv1.WorkloadEntry{
		Address: "127.0.10.3", Labels: map[string]string{"version": "v1"}, Locality: "r1/z1/s1", ServiceAccount: "bookinfo-reviews",
	})
	v2 := we("default", "reviews-v2", nil, &networkingv1.WorkloadEntry{
		Address: "127.0.10.4", Labels: map[string]string{"app": "reviews", "version": "v2"}, Weight: 3, Ports: map[string]uint32{"http": 9999},
	})
	otherNS := we("other", "reviews-x", nil, &networkingv1.WorkloadEntry{Address: "127.0.10.9", Labels: map[string]string{"app": "reviews"}})
	ratings := we("default", "ratings-v1", nil, &networkingv1.WorkloadEntry{Address: "127.0.10.6", Labels: map[string]string{"app": "ratings"}})

	v1Endpoint := &Endpoint{Address: "127.0.10.3", Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "bookinfo-reviews",
		Weight: 1, Locality: "r1/z1/s1", Namespace: "default", WorkloadName: "reviews-v1", Healthy: true}
	v2Endpoint := &Endpoint{Address: "127.0.10.4", Ports: map[string]uint32{"http": 9999}, Labels: map[string]string{"app": "reviews", "version": "v2"},
		Weight: 3, Namespace: "default", WorkloadName: "reviews-v2", Healthy: true}
	reviewsPorts := []Port{{Name: "http", Number: 9080, Protocol: ProtocolHTTP, TargetPort: 8080}, {Name: "grpc-x", Number: 9443, Protocol: ProtocolGRPC}}

	tests := []struct {
		name string
		in   []*config.Resource
		want *Registry
	}{
		{
			name: "empty",
			want: &Registry{Endpoints: map[string][]*Endpoint{}, Workloads: map[string]*Workload{}},
		},
		{
			name: "selector picks workload entries in the same namespace",
			in:   []*config.Resource{reviewsSE, v1, v2, otherNS, ratings},
			want: &Registry{
				Services: []*Service{
					{Hostname: "reviews", Namespace: "default", Ports: reviewsPorts, WorkloadSelector: map[string]string{"app": "reviews"},
						ExportTo: []string{"."}, Origin: reviewsSE.Key()},
					{Hostname: "reviews.default.svc.cluster.local", Namespace: "default", Ports: reviewsPorts, WorkloadSelector: map[string]string{"app": "reviews"},
						ExportTo: []string{"."}, Origin: reviewsSE.Key()},
				},
				Endpoints: map[string][]*Endpoint{
					"reviews/default": {v1Endpoint, v2Endpoint},
					"reviews.default.svc.cluster.local/default": {v1Endpoint, v2Endpoint},
				},
				Workloads: map[string]*Workload{
					"default/reviews-v1": {Name: "reviews-v1", Namespace: "default", Address: "127.0.10.3", Labels: map[string]string{"app": "reviews", "version": "v1"},
						ServiceAccount: "bookinfo-reviews", Locality: "r1/z1/s1", Weight: 1},
					"default/reviews-v2": {Name: "reviews-v2", Namespace: "default", Address: "127.0.10.4", Ports: map[string]uint32{"http": 9999},
						Labels: map[string]string{"app": "reviews", "version": "v2"}, Weight: 3},
					"other/reviews-x":    {Name: "reviews-x", Namespace: "other", Address: "127.0.10.9", Labels: map[string]string{"app": "reviews"}, Weight: 1},
					"default/ratings-v1": {Name: "ratings-v1", Namespace: "default", Address: "127.0.10.6", Labels: map[string]string{"app": "ratings"}, Weight: 1},
				},
			},
		},
		{
			name: "inline endpoints, DNS, external",
			in: []*config.Resource{se("ext", "httpbin", &networkingv1.ServiceEntry{
				Hosts:      []string{"httpbin.org"},
				Addresses:  []string{"240.0.0.1"},
				Ports:      []*networkingv1.ServicePort{{Number: 80, Name: "web", Protocol: "HTTP"}},
				Location:   networkingv1.ServiceEntry_MESH_EXTERNAL,
				Resolution: networkingv1.ServiceEntry_DNS,
				Endpoints:  []*networkingv1.WorkloadEntry{{Address: "b.example"}, {Address: "a.example", Weight: 2, Locality: "r/z"}},
			})},
			want: &Registry{
				Services: []*Service{{Hostname: "httpbin.org", Namespace: "ext", Addresses: []string{"240.0.0.1"},
					Ports: []Port{{Name: "web", Number: 80, Protocol: ProtocolHTTP}}, Resolution: ResolutionDNS, External: true,
					Origin: config.Key{Kind: config.KindServiceEntry, Namespace: "ext", Name: "httpbin"}}},
				Endpoints: map[string][]*Endpoint{"httpbin.org/ext": {
					{Address: "a.example", Weight: 2, Locality: "r/z", Namespace: "ext", Healthy: true},
					{Address: "b.example", Weight: 1, Namespace: "ext", Healthy: true},
				}},
				Workloads: map[string]*Workload{},
			},
		},
		{
			name: "DNS without endpoints resolves the host; duplicate host first wins",
			in: []*config.Resource{
				se("ext", "a", &networkingv1.ServiceEntry{Hosts: []string{"api.example.com", "*.wild.example.com"}, Resolution: networkingv1.ServiceEntry_DNS,
					Ports: []*networkingv1.ServicePort{{Number: 443, Name: "tls"}}}),
				se("ext", "b", &networkingv1.ServiceEntry{Hosts: []string{"api.example.com"}, Resolution: networkingv1.ServiceEntry_STATIC}),
			},
			want: &Registry{
				Services: []*Service{
					{Hostname: "*.wild.example.com", Namespace: "ext", Ports: []Port{{Name: "tls", Number: 443, Protocol: ProtocolTLS}}, Resolution: ResolutionDNS,
						External: true, Origin: config.Key{Kind: config.KindServiceEntry, Namespace: "ext", Name: "a"}},
					{Hostname: "api.example.com", Namespace: "ext", Ports: []Port{{Name: "tls", Number: 443, Protocol: ProtocolTLS}}, Resolution: ResolutionDNS,
						External: true, Origin: config.Key{Kind: config.KindServiceEntry, Namespace: "ext", Name: "a"}},
				},
				Endpoints: map[string][]*Endpoint{
					"*.wild.example.com/ext": nil,
					"api.example.com/ext":    {{Address: "api.example.com", Weight: 1, Namespace: "ext", Healthy: true}},
				},
				Workloads: map[string]*Workload{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewServiceEntrySource().Registry(config.NewSet(tt.in))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Registry() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpointPortFor(t *testing.T) {
	p := Port{Name: "http", Number: 9080, TargetPort: 8080}
	tests := []struct {
		name string
		ep   Endpoint
		want uint32
	}{
		{"named port wins", Endpoint{Ports: map[string]uint32{"http": 7000}}, 7000},
		{"target port", Endpoint{Ports: map[string]uint32{"grpc": 7000}}, 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ep.PortFor(p); got != tt.want {
				t.Errorf("PortFor = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := &Registry{
		Services:  []*Service{{Hostname: "b", Namespace: "ns"}, {Hostname: "a", Namespace: "ns"}},
		Endpoints: map[string][]*Endpoint{"a/ns": {{Address: "1.1.1.1"}}, "b/ns": {{Address: "2.2.2.2"}}},
		Workloads: map[string]*Workload{"ns/w": {Name: "w", Address: "1"}},
	}
	b := &Registry{
		Services:  []*Service{{Hostname: "a", Namespace: "ns", External: true}, {Hostname: "a", Namespace: "other"}},
		Endpoints: map[string][]*Endpoint{"a/ns": {{Address: "9.9.9.9"}}, "a/other": {{Address: "3.3.3.3"}}},
		Workloads: map[string]*Workload{"ns/w": {Name: "w", Address: "2"}, "ns/x": {Name: "x"}},
	}
	tests := []struct {
		name string
		in   []*Registry
		want *Registry
	}{
		{"none", nil, &Registry{Endpoints: map[string][]*Endpoint{}, Workloads: map[string]*Workload{}}},
		{"nil skipped", []*Registry{nil, a}, &Registry{
			Services:  []*Service{{Hostname: "a", Namespace: "ns"}, {Hostname: "b", Namespace: "ns"}},
			Endpoints: a.Endpoints,
			Workloads: a.Workloads,
		}},
		{"first wins", []*Registry{a, b}, &Registry{
			Services:  []*Service{{Hostname: "a", Namespace: "ns"}, {Hostname: "a", Namespace: "other"}, {Hostname: "b", Namespace: "ns"}},
			Endpoints: map[string][]*Endpoint{"a/ns": {{Address: "1.1.1.1"}}, "b/ns": {{Address: "2.2.2.2"}}, "a/other": {{Address: "3.3.3.3"}}},
			Workloads: map[string]*Workload{"ns/w": {Name: "w", Address: "1"}, "ns/x": {Name: "x"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Merge(tt.in...)); diff != "" {
				t.Errorf("Merge() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseProtocol(f *testing.F) {
	f.Add("", "http-web")
	f.Add("GRPC", "")
	f.Fuzz(func(t *testing.T, protocol, name string) {
		switch ParseProtocol(protocol, name) {
		case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolHTTPS, ProtocolTCP, ProtocolTLS, ProtocolMongo, ProtocolUnknown:
		default:
			t.Fatalf("ParseProtocol(%q, %q) returned an unknown value", protocol, name)
		}
	})
}
