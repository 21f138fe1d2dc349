package xdsserver

import (
	"fmt"
	"io"
	"log/slog"
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
