package translator

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/trellis-mesh/trellis/internal/config"
)

// reachEdits are VirtualService edits of largeMesh (+ largeMeshVariety,
// whose ns1 Sidecar imports ./* and svc2.ns2): each is the YAML before and
// after.
var reachEdits = []struct {
	name          string
	before, after string
}{
	{"header, exported everywhere", vsYAML("svc0", "ns0", "", "", "a"), vsYAML("svc0", "ns0", "", "", "b")},
	{"header, exported to its namespace", vsYAML("svc0", "ns0", "[.]", "", "a"), vsYAML("svc0", "ns0", "[.]", "", "b")},
	{"added", "", vsYAML("svc3", "ns3", "", "", "a")},
	{"removed", vsYAML("svc3", "ns3", "", "", "a"), ""},
	{"exportTo narrowed", vsYAML("svc0", "ns0", "", "", "a"), vsYAML("svc0", "ns0", "[ns2]", "", "a")},
	{"gateway only", vsYAML("svc0", "ns0", "", "[ns0/gw]", "a"), vsYAML("svc0", "ns0", "", "[ns0/gw]", "b")},
	{"gateway to mesh", vsYAML("svc0", "ns0", "", "[ns0/gw]", "a"), vsYAML("svc0", "ns0", "", "[ns0/gw, mesh]", "a")},
	{"fault added", vsYAML("svc0", "ns0", "", "", "a"), vsYAML("svc0", "ns0", "", "", "a") + "    fault: {abort: {httpStatus: 503, percentage: {value: 1}}}\n"},
	{"host selected by a Sidecar", vsYAML("svc1", "ns1", "", "", "a"), vsYAML("svc1", "ns1", "", "", "b")},
	{"not a service", vsHostYAML("x", "ns0", "nothing.example.com", "a"), vsHostYAML("x", "ns0", "nothing.example.com", "b")},
	{"wildcard", vsHostYAML("w", "ns2", "*.ns2.svc.cluster.local", "a"), vsHostYAML("w", "ns2", "*.ns2.svc.cluster.local", "b")},
	{"short host", vsHostYAML("s", "ns2", "svc2", "a"), vsHostYAML("s", "ns2", "svc2", "b")},
}

// vsYAML is a VirtualService for service svc (in ns) setting a header.
func vsYAML(svc, ns, exportTo, gateways, mark string) string {
	return vsHostYAML(svc, ns, svc+"."+ns+".svc.cluster.local", mark, "exportTo: "+exportTo, "gateways: "+gateways)
}

func vsHostYAML(name, ns, host, mark string, extra ...string) string {
	var spec strings.Builder
	for _, e := range extra {
		if !strings.HasSuffix(e, " ") {
			spec.WriteString("  " + e + "\n")
		}
	}
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-%s, namespace: %s}
spec:
  hosts: ["%s"]
%s  http:
  - headers: {request: {set: {x-mark: %s}}}
    route: [{destination: {host: "%s"}}]
`, name, ns, host, spec.String(), mark, strings.TrimPrefix(host, "*."))
}

// TestVirtualServiceReach: for every edit and proxy, what the reach says
// cannot change did not change: ReachNone leaves the whole translation
// equal, ReachListeners leaves clusters and endpoints equal and
// TranslateListeners gives the new listeners and route tables.
func TestVirtualServiceReach(t *testing.T) {
	base := largeMeshYAML(12, 1) + largeMeshVariety
	var proxies []Proxy
	for ns := range 4 {
		proxies = append(proxies,
			Proxy{Type: Sidecar, Namespace: fmt.Sprintf("ns%d", ns), Name: "client", Address: "127.0.3.1"},
			Proxy{Type: Proxyless, Namespace: fmt.Sprintf("ns%d", ns)})
	}
	proxies = append(proxies, Proxy{Type: Router, Namespace: "ns0", Name: "client"})
	for _, e := range reachEdits {
		t.Run(e.name, func(t *testing.T) {
			old, next := snapshotOf(t, base+e.before), snapshotOf(t, base+e.after)
			next.Version = 2
			vss := changedVirtualServices(old.Config, next.Config)
			if len(vss) == 0 {
				t.Fatal("the edit changed no VirtualService")
			}
			c := NewCache()
			reached := 0
			for _, p := range proxies {
				before, after := Translate(old, p), TranslateCached(next, p, c)
				sent := func(h string) bool {
					return slices.ContainsFunc(clusterHosts(before), func(x string) bool { return x == h })
				}
				reach := VirtualServiceReach(next, p, vss, sent)
				if reach != ReachNone {
					reached++
				}
				switch reach {
				case ReachNone:
					if diff := cmp.Diff(before, after, protocmp.Transform()); diff != "" {
						t.Errorf("%+v: ReachNone but the translation changed:\n%s", p, diff)
					}
				case ReachListeners:
					for name, pair := range map[string][2]any{
						"clusters": {before.Clusters, after.Clusters}, "endpoints": {before.Endpoints, after.Endpoints}} {
						if diff := cmp.Diff(pair[0], pair[1], protocmp.Transform()); diff != "" {
							t.Errorf("%+v: ReachListeners but %s changed:\n%s", p, name, diff)
						}
					}
					part := TranslateListeners(next, p, c)
					if diff := cmp.Diff(after.Listeners, part.Listeners, protocmp.Transform()); diff != "" {
						t.Errorf("%+v: TranslateListeners listeners differ:\n%s", p, diff)
					}
					if diff := cmp.Diff(after.Routes, part.Routes, protocmp.Transform()); diff != "" {
						t.Errorf("%+v: TranslateListeners routes differ:\n%s", p, diff)
					}
				}
			}
			if reached == 0 {
				t.Error("no proxy reached")
			}
		})
	}
}

// changedVirtualServices lists the old and new versions of every
// VirtualService whose spec differs between a and b (snapshotOf parses
// afresh, so pointers always differ).
func changedVirtualServices(a, b *config.Set) []*config.Resource {
	key := func(r *config.Resource) string { return r.Meta.Namespace + "/" + r.Meta.Name }
	olds, news := map[string]*config.Resource{}, map[string]*config.Resource{}
	for _, r := range a.List(config.KindVirtualService) {
		olds[key(r)] = r
	}
	for _, r := range b.List(config.KindVirtualService) {
		news[key(r)] = r
	}
	var out []*config.Resource
	for k, o := range olds {
		if n, ok := news[k]; !ok || !cmp.Equal(o.Spec, n.Spec, protocmp.Transform()) {
			out = append(out, o)
		}
	}
	for k, n := range news {
		if o, ok := olds[k]; !ok || !cmp.Equal(o.Spec, n.Spec, protocmp.Transform()) {
			out = append(out, n)
		}
	}
	return out
}

// clusterHosts are the HOSTs of r's outbound clusters.
func clusterHosts(r *Resources) []string {
	var out []string
	for name := range r.Clusters {
		if rest, ok := strings.CutPrefix(name, "outbound|"); ok {
			out = append(out, rest[strings.LastIndexByte(rest, '|')+1:])
		}
	}
	return out
}
