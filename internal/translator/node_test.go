package translator

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
)

func node(id string, meta map[string]string) *corev3.Node {
	n := &corev3.Node{Id: id}
	if meta != nil {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range meta {
			n.Metadata.Fields[k] = structpb.NewStringValue(v)
		}
	}
	return n
}

func TestParseNode(t *testing.T) {
	tests := []struct {
		name string
		in   *corev3.Node
		want Proxy
	}{
		{"sidecar", node("sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local", nil),
			Proxy{ID: "sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local", Type: Sidecar, Namespace: "default", Name: "reviews-v1", Address: "127.0.10.3"}},
		{"router without IP", node("router~~istio-ingressgateway.istio-system~istio-system.svc.cluster.local", nil),
			Proxy{ID: "router~~istio-ingressgateway.istio-system~istio-system.svc.cluster.local", Type: Router, Namespace: "istio-system", Name: "istio-ingressgateway"}},
		{"dotted workload name splits at the last dot", node("sidecar~10.0.0.1~vm.a.b.prod~prod.svc.cluster.local", nil),
			Proxy{ID: "sidecar~10.0.0.1~vm.a.b.prod~prod.svc.cluster.local", Type: Sidecar, Namespace: "prod", Name: "vm.a.b", Address: "10.0.0.1"}},
		{"name without namespace uses the domain", node("sidecar~10.0.0.1~vm~prod.svc.cluster.local", nil),
			Proxy{ID: "sidecar~10.0.0.1~vm~prod.svc.cluster.local", Type: Sidecar, Namespace: "prod", Name: "vm", Address: "10.0.0.1"}},
		{"grpc generator", node("sidecar~127.0.0.9~client.default~default.svc.cluster.local", map[string]string{"GENERATOR": "grpc"}),
			Proxy{ID: "sidecar~127.0.0.9~client.default~default.svc.cluster.local", Type: Proxyless, Namespace: "default", Name: "client", Address: "127.0.0.9"}},
		{"unparseable id is proxyless", node("my-grpc-client", map[string]string{"NAMESPACE": "shop"}),
			Proxy{ID: "my-grpc-client", Type: Proxyless, Namespace: "shop"}},
		{"unknown type", node("ingress~1.2.3.4~a.b~b.svc.cluster.local", nil), Proxy{ID: "ingress~1.2.3.4~a.b~b.svc.cluster.local", Type: Proxyless}},
		{"too few parts", node("sidecar~1.2.3.4~a.b", nil), Proxy{ID: "sidecar~1.2.3.4~a.b", Type: Proxyless}},
		{"empty name", node("sidecar~1.2.3.4~.b~b.svc.cluster.local", nil), Proxy{ID: "sidecar~1.2.3.4~.b~b.svc.cluster.local", Type: Proxyless}},
		{"nil node", nil, Proxy{Type: Proxyless}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseNode(tt.in)); diff != "" {
				t.Errorf("ParseNode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseNode(f *testing.F) {
	f.Add("sidecar~127.0.10.3~reviews-v1.default~default.svc.cluster.local", "")
	f.Add("router~~gw.istio-system~istio-system.svc.cluster.local", "grpc")
	f.Add("~~~", "")
	f.Fuzz(func(t *testing.T, id, generator string) {
		p := ParseNode(node(id, map[string]string{"GENERATOR": generator}))
		if p.ID != id {
			t.Fatalf("ID = %q, want %q", p.ID, id)
		}
		if p.Type != Proxyless && (p.Name == "" || p.Namespace == "") {
			t.Fatalf("%q: non-proxyless %+v without workload", id, p)
		}
	})
}

// FuzzTranslate feeds arbitrary node ids through Translate on the Bookinfo
// snapshot: it must never panic and always produce valid resources.
func FuzzTranslate(f *testing.F) {
	f.Add("sidecar~127.0.10.1~productpage-v1.default~default.svc.cluster.local")
	f.Add("router~~istio-ingressgateway.istio-system~istio-system.svc.cluster.local")
	f.Add("sidecar~~ghost.nowhere~nowhere.svc.cluster.local")
	snap := bookinfo(f)
	f.Fuzz(func(t *testing.T, id string) {
		validateAll(t, Translate(snap, ParseNode(&corev3.Node{Id: id})))
	})
}
