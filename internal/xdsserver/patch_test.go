package xdsserver

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// movedEndpoint is s with WorkloadEntry svcN-0 of namespace ns moved to
// addr, as a new snapshot with the given version.
func movedEndpoint(t testing.TB, s *snapshot.Snapshot, version uint64, svc int, addr string) *snapshot.Snapshot {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-0, namespace: ns%d}\n"+
		"spec: {address: %s, serviceAccount: svc%d, labels: {app: svc%d, security.istio.io/tlsMode: istio}}\n",
		svc, svc%4, addr, svc, svc)
	more, _, errs := config.Parse("moved.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	cfg := config.NewSet(append(more, s.Config.All()...)) // the first of a key wins
	return &snapshot.Snapshot{Version: version, Config: cfg, Registry: registry.NewServiceEntrySource().Registry(cfg), Mesh: s.Mesh}
}

// After an endpoint-only change every affected node's snapshot is patched,
// not translated again, and equals what a full translation builds; its
// listeners and routes are the very resources it had.
func TestEndpointChangePatchEqualsFullTranslation(t *testing.T) {
	base := benchMesh(t, 40, 3)
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("sidecar~127.200.0.%d~client.ns%d~ns%d.svc.cluster.local", i%4+1, i%4, i%4)
		if i >= 4 {
			id = fmt.Sprintf("sidecar~127.201.0.%d~unknown.ns%d~ns%d.svc.cluster.local", i, i%4, i%4)
		}
		ids = append(ids, id)
	}
	srv, before := connectedServer(t, base, ids)
	snaps := []*snapshot.Snapshot{movedEndpoint(t, base, 2, 5, "127.9.9.9"), movedEndpoint(t, base, 3, 5, "127.9.9.8")}
	snaps = append(snaps, movedEndpoint(t, snaps[1], 4, 6, "127.9.9.7"))
	for _, snap := range snaps {
		srv.Update(snap)
		srv.pushAll()
		for _, id := range ids {
			got, err := srv.sidecars.GetSnapshot(id)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := build(translator.Translate(snap, translator.ParseNode(nodeProto(id))), id, internLog, nil)
			for i, st := range servedTypes {
				if got.sets[i].version != want.sets[i].version {
					t.Errorf("v%d %s %s: version %s, full translation %s", snap.Version, id, typeLabel(st.url),
						got.sets[i].version, want.sets[i].version)
				}
				if diff := cmp.Diff(want.sets[i].names(), got.sets[i].names()); diff != "" {
					t.Errorf("v%d %s %s names (-full +patched):\n%s", snap.Version, id, typeLabel(st.url), diff)
				}
			}
			srv.mu.Lock()
			patches := srv.nodes[id].patches.Load()
			srv.mu.Unlock()
			if want := snap.Version - 1; patches != want {
				t.Errorf("v%d %s: %d patches, want %d", snap.Version, id, patches, want)
			}
			for _, i := range []int{2, 3} { // listeners, routes: untouched
				if got.sets[i] != before[id].sets[i] {
					t.Errorf("v%d %s: %s set rebuilt; want the node's own, as patched", snap.Version, id, typeLabel(servedTypes[i].url))
				}
			}
		}
	}
}

// withVirtualService is s plus (or with a replaced) VirtualService vs-svcN
// in namespace ns routing service svcN with header x-mark: mark, as a new
// snapshot with the given version.
func withVirtualService(t testing.TB, s *snapshot.Snapshot, version uint64, svc int, mark string) *snapshot.Snapshot {
	t.Helper()
	host := fmt.Sprintf("svc%d.ns%d.svc.cluster.local", svc, svc%4)
	doc := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-svc%d, namespace: ns%d}\n"+
		"spec: {hosts: [%s], http: [{headers: {request: {set: {x-mark: %s}}}, route: [{destination: {host: %s}}]}]}\n",
		svc, svc%4, host, mark, host)
	more, _, errs := config.Parse("vs.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	cfg := config.NewSet(append(more, s.Config.All()...)) // the first of a key wins
	return &snapshot.Snapshot{Version: version, Config: cfg, Registry: s.Registry, Mesh: s.Mesh}
}

// After a VirtualService edit every node that sees the service has its
// listeners and routes translated again, not its clusters; the result
// equals a full translation, and nodes of one namespace share one route
// table set.
func TestVirtualServiceChangePatchEqualsFullTranslation(t *testing.T) {
	base := benchMesh(t, 40, 3)
	var ids []string
	for i := range 8 {
		ids = append(ids, fmt.Sprintf("sidecar~127.201.0.%d~unknown%d.ns%d~ns%d.svc.cluster.local", i, i, i%2, i%2))
	}
	srv, before := connectedServer(t, base, ids)
	snaps := []*snapshot.Snapshot{withVirtualService(t, base, 2, 5, "one")}
	snaps = append(snaps, withVirtualService(t, snaps[0], 3, 5, "two"), withVirtualService(t, snaps[0], 4, 6, "three"))
	for _, snap := range snaps {
		srv.Update(snap)
		srv.pushAll()
		byNS := map[string]*resourceSet{}
		for _, id := range ids {
			got, err := srv.sidecars.GetSnapshot(id)
			if err != nil {
				t.Fatal(err)
			}
			p := translator.ParseNode(nodeProto(id))
			want, _ := build(translator.Translate(snap, p), id, internLog, nil)
			for i, st := range servedTypes {
				if got.sets[i].version != want.sets[i].version {
					t.Errorf("v%d %s %s: version %s, full translation %s", snap.Version, id, typeLabel(st.url),
						got.sets[i].version, want.sets[i].version)
				}
			}
			for _, i := range patchTypes { // clusters, endpoints: untouched
				if got.sets[i] != before[id].sets[i] {
					t.Errorf("v%d %s: %s set rebuilt; want the node's own", snap.Version, id, typeLabel(servedTypes[i].url))
				}
			}
			if rs, ok := byNS[p.Namespace]; ok && rs != got.sets[3] {
				t.Errorf("v%d %s: route set not shared within namespace %s", snap.Version, id, p.Namespace)
			}
			byNS[p.Namespace] = got.sets[3]
			srv.mu.Lock()
			patches, translations := srv.nodes[id].patches.Load(), srv.nodes[id].translations.Load()
			srv.mu.Unlock()
			if patches != translations-1 {
				t.Errorf("v%d %s: %d translations, %d of them patches; want all but the first patched", snap.Version, id, translations, patches)
			}
		}
	}
}

// connectedServer is a server on snap with a stream open for each node id,
// and each node's first snapshot. The server closes when t ends.
func connectedServer(t *testing.T, snap *snapshot.Snapshot, ids []string) (*Server, map[string]*nodeSnapshot) {
	t.Helper()
	srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.Update(snap)
	first := map[string]*nodeSnapshot{}
	for i, id := range ids {
		k := streamKey{id: int64(i + 1)}
		srv.open(k)
		srv.first(k, nodeProto(id))
		first[id], _ = srv.sidecars.GetSnapshot(id)
	}
	return srv, first
}

func (rs *resourceSet) names() []string {
	out := make([]string, len(rs.sorted))
	for i, r := range rs.sorted {
		out[i] = r.name
	}
	return out
}
