package xdsserver

import (
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"unique"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// changeMesh is two services, a and b, in namespace default; a client
// workload there that sees both; and a client in namespace scoped whose
// Sidecar lets it see only b.
const changeMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec: {hosts: [a.default.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: http}], workloadSelector: {labels: {app: a}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec: {hosts: [b.default.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: http}], workloadSelector: {labels: {app: b}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a-1, namespace: default}
spec: {address: 127.0.30.1, labels: {app: a}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: b-1, namespace: default}
spec: {address: 127.0.31.1, labels: {app: b}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.10.1, labels: {app: client}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec: {egress: [{hosts: [default/b.default.svc.cluster.local]}]}
`

const scopedClient = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: scoped}
spec: {address: 127.0.10.2, labels: {app: client}}
`

const (
	clientAll    = "sidecar~127.0.10.1~client.default~default.svc.cluster.local"
	clientScoped = "sidecar~127.0.10.2~client.scoped~scoped.svc.cluster.local"
	clusterOfA   = "outbound|8080||a.default.svc.cluster.local"
)

// changeSnapshot parses docs (YAML documents) into a snapshot, with fresh
// resource pointers as configdir gives a changed file.
func changeSnapshot(t *testing.T, version uint64, docs ...string) *snapshot.Snapshot {
	t.Helper()
	rs, _, errs := config.Parse("mesh.yaml", []byte(strings.Join(docs, "\n---\n")))
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs[0])
	}
	cfg := config.NewSet(rs)
	return &snapshot.Snapshot{Version: version, Config: cfg, Registry: registry.NewServiceEntrySource().Registry(cfg),
		Mesh: snapshot.DefaultMesh()}
}

// markUnhealthy is what the health checker publishes: the same config and
// a registry whose endpoint for workload namespace/name is down.
func markUnhealthy(s *snapshot.Snapshot, version uint64, namespace, name string) *snapshot.Snapshot {
	reg := &registry.Registry{Services: s.Registry.Services, Workloads: s.Registry.Workloads,
		Endpoints: maps.Clone(s.Registry.Endpoints)}
	for k, eps := range reg.Endpoints {
		out := make([]*registry.Endpoint, len(eps))
		for i, e := range eps {
			out[i] = e
			if e.Namespace == namespace && e.WorkloadName == name {
				c := *e
				c.Healthy = false
				out[i] = &c
			}
		}
		reg.Endpoints[k] = out
	}
	return &snapshot.Snapshot{Version: version, Config: s.Config, Registry: reg, Mesh: s.Mesh}
}

// incrementalServer is a server with the built-in translator and two
// connected proxies, driven synchronously (no push loop).
func incrementalServer(t *testing.T, first *snapshot.Snapshot) *Server {
	t.Helper()
	srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.Update(first)
	for i, id := range []string{clientAll, clientScoped} {
		k := streamKey{id: int64(i + 1)}
		srv.open(k)
		srv.first(k, nodeProto(id))
	}
	return srv
}

func (s *Server) translationsOf(t *testing.T, id string) uint64 {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		t.Fatalf("node %s not connected", id)
	}
	return n.translations.Load()
}

// endpointsOf returns "address healthStatus" for each endpoint of cluster
// in the node's cached snapshot.
func endpointsOf(t *testing.T, s *Server, id, cluster string) []string {
	t.Helper()
	snap, err := s.sidecars.GetSnapshot(id)
	if err != nil {
		t.Fatalf("snapshot of %s: %v", id, err)
	}
	r, ok := snap.GetResources(resourcev3.EndpointType)[cluster]
	if !ok {
		return nil
	}
	var out []string
	for _, l := range r.(*endpointv3.ClusterLoadAssignment).GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()+" "+e.GetHealthStatus().String())
		}
	}
	return out
}

func TestEndpointOnlyChangesSkipUnaffectedProxies(t *testing.T) {
	base := changeSnapshot(t, 1, changeMesh, scopedClient)
	tests := []struct {
		name string
		next func(t *testing.T) *snapshot.Snapshot
		// want is how many times each proxy is translated for the change.
		wantAll, wantScoped uint64
		wantA               []string // clientAll's endpoints of a afterwards; nil: not checked
	}{
		{
			name: "endpoint of a moves",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, strings.Replace(changeMesh, "127.0.30.1", "127.0.30.9", 1), scopedClient)
			},
			wantAll: 1, wantA: []string{"127.0.30.9 HEALTHY"},
		},
		{
			name: "endpoint added to a",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, changeMesh, scopedClient,
					"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a-2, namespace: default}\nspec: {address: 127.0.30.2, labels: {app: a}}")
			},
			wantAll: 1, wantA: []string{"127.0.30.1 HEALTHY", "127.0.30.2 HEALTHY"},
		},
		{
			name: "endpoint of b moves",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, strings.Replace(changeMesh, "127.0.31.1", "127.0.31.9", 1), scopedClient)
			},
			wantAll: 1, wantScoped: 1,
		},
		{
			name:    "health flip of a",
			next:    func(*testing.T) *snapshot.Snapshot { return markUnhealthy(base, 2, "default", "a-1") },
			wantAll: 1, wantA: []string{"127.0.30.1 UNHEALTHY"},
		},
		{
			name: "registry republished unchanged",
			next: func(*testing.T) *snapshot.Snapshot { return markUnhealthy(base, 2, "default", "nobody") },
		},
		{
			name: "config reparsed unchanged",
			next: func(t *testing.T) *snapshot.Snapshot { return changeSnapshot(t, 2, changeMesh, scopedClient) },
		},
		{
			name: "proxy's own WorkloadEntry changes",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, changeMesh, strings.Replace(scopedClient, "app: client", "app: client, v: two", 1))
			},
			wantScoped: 1,
		},
		{
			name:       "proxy's own WorkloadEntry removed",
			next:       func(t *testing.T) *snapshot.Snapshot { return changeSnapshot(t, 2, changeMesh) },
			wantScoped: 1,
		},
		{
			name: "VirtualService added",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, changeMesh, scopedClient,
					"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\n"+
						"spec: {hosts: [a.default.svc.cluster.local], http: [{timeout: 3s, route: [{destination: {host: a.default.svc.cluster.local}}]}]}")
			},
			wantAll: 1, // the scoped client does not see a
		},
		{
			name: "VirtualService of b added",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, changeMesh, scopedClient,
					"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b, namespace: default}\n"+
						"spec: {hosts: [b.default.svc.cluster.local], http: [{timeout: 3s, route: [{destination: {host: b.default.svc.cluster.local}}]}]}")
			},
			wantAll: 1, wantScoped: 1,
		},
		{
			name: "VirtualService of a exported elsewhere",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, changeMesh, scopedClient,
					"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\n"+
						"spec: {hosts: [a.default.svc.cluster.local], exportTo: [other], http: [{timeout: 3s, route: [{destination: {host: a.default.svc.cluster.local}}]}]}")
			},
		},
		{
			name: "VirtualService and endpoint together",
			next: func(t *testing.T) *snapshot.Snapshot {
				return changeSnapshot(t, 2, strings.Replace(changeMesh, "127.0.31.1", "127.0.31.9", 1), scopedClient,
					"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\n"+
						"spec: {hosts: [a.default.svc.cluster.local], exportTo: [other], http: [{timeout: 3s, route: [{destination: {host: a.default.svc.cluster.local}}]}]}")
			},
			wantAll: 1, wantScoped: 1, // classified as a full change
		},
		{
			name: "mesh settings change",
			next: func(*testing.T) *snapshot.Snapshot {
				s := *base
				s.Version = 2
				s.Mesh.ProxyHTTPPort = 15081
				return &s
			},
			wantAll: 1, wantScoped: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := incrementalServer(t, base)
			if got := endpointsOf(t, srv, clientScoped, clusterOfA); got != nil {
				t.Fatalf("scoped client has endpoints of a: %v", got)
			}
			all0, scoped0 := srv.translationsOf(t, clientAll), srv.translationsOf(t, clientScoped)
			next := tc.next(t)
			srv.Update(next)
			srv.pushAll()
			if got := srv.translationsOf(t, clientAll) - all0; got != tc.wantAll {
				t.Errorf("client (sees a and b) translated %d times, want %d", got, tc.wantAll)
			}
			if got := srv.translationsOf(t, clientScoped) - scoped0; got != tc.wantScoped {
				t.Errorf("scoped client (sees b) translated %d times, want %d", got, tc.wantScoped)
			}
			if tc.wantA != nil {
				if diff := cmp.Diff(tc.wantA, endpointsOf(t, srv, clientAll, clusterOfA)); diff != "" {
					t.Errorf("client's endpoints of a (-want +got):\n%s", diff)
				}
			}
			for _, ps := range srv.Status() {
				if ps.SnapshotVersion != next.Version {
					t.Errorf("%s: SnapshotVersion %d, want %d (skipped proxies are current too)", ps.NodeID, ps.SnapshotVersion, next.Version)
				}
			}
			// A second pass over the same snapshot translates nobody.
			all1, scoped1 := srv.translationsOf(t, clientAll), srv.translationsOf(t, clientScoped)
			srv.pushAll()
			if srv.translationsOf(t, clientAll) != all1 || srv.translationsOf(t, clientScoped) != scoped1 {
				t.Error("a pass over an unchanged snapshot translated again")
			}
		})
	}
}

// TestSkippedProxyCatchesUpAcrossChanges: a proxy skipped for one change
// is still recomputed for a later change that affects it, classified from
// the snapshot it actually holds.
func TestSkippedProxyCatchesUpAcrossChanges(t *testing.T) {
	base := changeSnapshot(t, 1, changeMesh, scopedClient)
	srv := incrementalServer(t, base)
	scoped0 := srv.translationsOf(t, clientScoped)
	// 1. a changes: the scoped client is skipped.
	srv.Update(changeSnapshot(t, 2, strings.Replace(changeMesh, "127.0.30.1", "127.0.30.9", 1), scopedClient))
	srv.pushAll()
	// 2. b changes too: it is recomputed and gets b's new endpoint.
	srv.Update(changeSnapshot(t, 3, strings.NewReplacer("127.0.30.1", "127.0.30.9", "127.0.31.1", "127.0.31.9").Replace(changeMesh), scopedClient))
	srv.pushAll()
	if got := srv.translationsOf(t, clientScoped) - scoped0; got != 1 {
		t.Errorf("scoped client translated %d times, want 1", got)
	}
	if diff := cmp.Diff([]string{"127.0.31.9 HEALTHY"}, endpointsOf(t, srv, clientScoped, "outbound|8080||b.default.svc.cluster.local")); diff != "" {
		t.Errorf("scoped client's endpoints of b (-want +got):\n%s", diff)
	}
}

// hostLists shares a list only with an equal one.
func TestHostListsShare(t *testing.T) {
	var h hostLists
	a, b := unique.Make("a.example"), unique.Make("b.example")
	vers := versions{"c1", "e1", "l1", "r1"}
	first := h.share(vers, []unique.Handle[string]{a, b})
	same := h.share(versions{"c1", "e1", "l2", "r2"}, []unique.Handle[string]{a, b})
	if &same[0] != &first[0] {
		t.Error("equal list under the same cluster and endpoint versions not shared")
	}
	other := h.share(vers, []unique.Handle[string]{a})
	if len(other) != 1 || other[0] != a {
		t.Errorf("unequal list replaced by %v", other)
	}
}
