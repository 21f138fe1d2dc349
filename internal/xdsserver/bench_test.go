package xdsserver

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
	"github.com/trellis-mesh/trellis/internal/translator"
)

// benchMesh is issue 5's scale: services ServiceEntries in four namespaces
// with perService WorkloadEntries each, loaded as users' files are.
func benchMesh(tb testing.TB, services, perService int) *snapshot.Snapshot {
	tb.Helper()
	var sb strings.Builder
	for i := range services {
		ns := fmt.Sprintf("ns%d", i%4)
		fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc%d, namespace: %s}\n"+
			"spec: {hosts: [svc%d.%s.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: http}], workloadSelector: {labels: {app: svc%d}}}\n---\n",
			i, ns, i, ns, i)
		for j := range perService {
			n := i*perService + j
			fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-%d, namespace: %s}\n"+
				"spec: {address: 127.%d.%d.%d, serviceAccount: svc%d, labels: {app: svc%d, security.istio.io/tlsMode: istio}}\n---\n",
				i, j, ns, 1+n/65536, (n/256)%256, n%256, i, i)
		}
	}
	for ns := range 4 {
		fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: client, namespace: ns%d}\n"+
			"spec: {address: 127.200.0.%d, labels: {app: client}}\n---\n", ns, ns+1)
	}
	rs, _, errs := config.Parse("bench.yaml", []byte(sb.String()))
	if len(errs) > 0 {
		tb.Fatalf("bench mesh: %v", errs[0])
	}
	cfg := config.NewSet(rs)
	return &snapshot.Snapshot{Version: 1, Config: cfg, Registry: registry.NewServiceEntrySource().Registry(cfg), Mesh: snapshot.DefaultMesh()}
}

// BenchmarkPush1000Services100Proxies is what pushAll does for 100
// sidecars after one snapshot: translate and build each, sharing what the
// server shares.
func BenchmarkPush1000Services100Proxies(b *testing.B) {
	snap := benchMesh(b, 1000, 10)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	proxies := make([]translator.Proxy, 100)
	for i := range proxies {
		proxies[i] = translator.Proxy{ID: fmt.Sprintf("p%d", i), Type: translator.Sidecar, Namespace: fmt.Sprintf("ns%d", i%4), Name: "client"}
	}
	for _, bc := range []struct {
		name      string
		translate func(*translator.Cache) func(*snapshot.Snapshot, translator.Proxy) *translator.Resources
	}{
		{"Translate", func(*translator.Cache) func(*snapshot.Snapshot, translator.Proxy) *translator.Resources {
			return translator.Translate
		}},
		{"TranslateCached", func(c *translator.Cache) func(*snapshot.Snapshot, translator.Proxy) *translator.Resources {
			return func(s *snapshot.Snapshot, p translator.Proxy) *translator.Resources {
				return translator.TranslateCached(s, p, c)
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			shared := newInterner()
			b.ReportAllocs()
			for b.Loop() {
				tr := bc.translate(translator.NewCache()) // a new snapshot: a new cache
				for _, p := range proxies {
					build(tr(snap, p), p.ID, log, shared)
				}
				shared.sweep()
			}
		})
	}
}

// BenchmarkPushEndpointChange is one pass of the push loop after a
// WorkloadEntry of one service moves, with 100 sidecars each scoped by a
// Sidecar to the 250 services of its own namespace: only the 25 proxies in
// that namespace see the service.
func BenchmarkPushEndpointChange(b *testing.B) {
	scoped := func(s *snapshot.Snapshot, version uint64, moved bool) *snapshot.Snapshot {
		rs := s.Config.All()
		for ns := range 4 {
			doc := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: ns%d}\n"+
				"spec: {egress: [{hosts: [./*]}]}\n", ns)
			if moved && ns == 0 {
				doc += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc0-0, namespace: ns0}\n" +
					"spec: {address: 127.9.9.9, serviceAccount: svc0, labels: {app: svc0, security.istio.io/tlsMode: istio}}\n"
			}
			more, _, errs := config.Parse("scoped.yaml", []byte(doc))
			if len(errs) > 0 {
				b.Fatal(errs[0])
			}
			rs = append(more, rs...) // NewSet: the first of a key wins
		}
		cfg := config.NewSet(rs)
		return &snapshot.Snapshot{Version: version, Config: cfg, Registry: registry.NewServiceEntrySource().Registry(cfg), Mesh: s.Mesh}
	}
	base := benchMesh(b, 1000, 10)
	snaps := [2]*snapshot.Snapshot{scoped(base, 1, false), scoped(base, 2, true)}
	for _, bc := range []struct {
		name        string
		incremental bool
	}{{"RecomputeAll", false}, {"SkipUnaffected", true}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			srv.incremental = bc.incremental
			srv.Update(snaps[0])
			for i := range 100 {
				k := streamKey{id: int64(i + 1)}
				srv.open(k)
				srv.first(k, nodeProto(fmt.Sprintf("sidecar~127.200.1.%d~client.ns%d~ns%d.svc.cluster.local", i, i%4, i%4)))
			}
			b.ReportAllocs()
			v := uint64(2)
			for i := 0; b.Loop(); i++ {
				s := *snaps[(i+1)%2] // a new snapshot each pass, alternating the endpoint
				s.Version = v
				v++
				srv.Update(&s)
				srv.pushAll()
			}
		})
	}
}

// BenchmarkDeltaStreamState measures what a delta stream keeps per type
// once synced to a set of 1000 resources it subscribes to by name (a
// sidecar's EDS), in live heap bytes per stream ("B/stream"), and the cost
// of the diff and commit of an endpoint change ("op"). go-control-plane is
// its stream.Subscription with the version map the sidecar cache kept
// before deltaSub (refSub).
func BenchmarkDeltaStreamState(b *testing.B) {
	const n, streams = 1000, 200
	ss := subSets{}
	var pairs, names []string
	for i := range n {
		name := fmt.Sprintf("outbound|8080||svc%d.ns%d.svc.cluster.local", i, i%4)
		pairs = append(pairs, name, "1")
		names = append(names, name)
	}
	v1 := ss.set(pairs...)
	pairs[1] = "2"
	v2 := ss.set(pairs...)
	// The names a stream subscribes to are, as after Server.intern, the
	// set's own strings.
	for i, r := range v1.sorted {
		names[i] = r.name
	}
	// perStream is the live heap each stream newStream makes keeps. It is
	// reported after the loop: b.Loop's first call deletes metrics.
	perStream := func(newStream func() any) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		keep := make([]any, streams)
		for i := range keep {
			keep[i] = newStream()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(keep)
		return float64(after.HeapAlloc-before.HeapAlloc) / streams
	}
	b.Run("deltaSub", func(b *testing.B) {
		var ls nameLists
		sync := func() *deltaSub {
			d := &deltaSub{}
			d.request(&ls, true, slices.Clone(names), nil, nil, "")
			flushSub(d, v1)
			return d
		}
		bytes := perStream(func() any { return sync() })
		d := sync()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			flushSub(d, [2]*resourceSet{v2, v1}[i%2])
		}
		b.ReportMetric(bytes, "B/stream")
	})
	b.Run("go-control-plane", func(b *testing.B) {
		sync := func() *refSub {
			r := &refSub{}
			r.request(slices.Clone(names), nil, nil, "")
			r.flush(v1)
			return r
		}
		bytes := perStream(func() any { return sync() })
		r := sync()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r.flush([2]*resourceSet{v2, v1}[i%2])
		}
		b.ReportMetric(bytes, "B/stream")
	})
}
