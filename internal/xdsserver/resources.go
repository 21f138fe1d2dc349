package xdsserver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"maps"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

// servedTypes are the xDS types Trellis serves, in the order Envoy wants them
// on an ADS stream (CDS, EDS, LDS, RDS), paired with the cache's slot.
var servedTypes = [...]struct {
	url  string
	slot types.ResponseType
}{
	{resourcev3.ClusterType, types.Cluster},
	{resourcev3.EndpointType, types.Endpoint},
	{resourcev3.ListenerType, types.Listener},
	{resourcev3.RouteType, types.Route},
}

// versions holds one version string per served type, in servedTypes order.
type versions [len(servedTypes)]string

// typed splits a translator result into the served types' maps.
func typed(r *translator.Resources) [len(servedTypes)]map[string]proto.Message {
	if r == nil {
		return [len(servedTypes)]map[string]proto.Message{}
	}
	return [len(servedTypes)]map[string]proto.Message{r.Clusters, r.Endpoints, r.Listeners, r.Routes}
}

// validator is implemented by every Envoy API message (protoc-gen-validate).
type validator interface{ Validate() error }

// build validates every resource, drops (and logs) the invalid ones, and
// returns the cache snapshot with one version per type: a hash of that
// type's names and deterministic encodings, so identical resources always
// give the same version and an unchanged type is never re-sent.
//
// The cache's Consistent() is deliberately not called: it requires every RDS
// resource to be referenced by an HttpConnectionManager in a socket listener
// and rejects the API listeners that proxyless gRPC clients get.
func build(r *translator.Resources, node string, log *slog.Logger) (*cachev3.Snapshot, versions) {
	var (
		snap cachev3.Snapshot
		vers versions
	)
	for i, byName := range typed(r) {
		names := slices.Sorted(maps.Keys(byName))
		items := make([]types.Resource, 0, len(names))
		h := sha256.New()
		var lenBuf [8]byte
		for _, name := range names {
			m := byName[name]
			if m == nil {
				continue
			}
			if v, ok := m.(validator); ok {
				if err := v.Validate(); err != nil {
					log.Error("dropping invalid resource", "node", node, "type", typeLabel(servedTypes[i].url),
						"name", name, "err", err)
					continue
				}
			}
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				log.Error("dropping unencodable resource", "node", node, "type", typeLabel(servedTypes[i].url),
					"name", name, "err", err)
				continue
			}
			// Length-prefix each field so that ("ab","c") and ("a","bc") differ.
			binary.BigEndian.PutUint64(lenBuf[:], uint64(len(name)))
			h.Write(lenBuf[:])
			h.Write([]byte(name))
			binary.BigEndian.PutUint64(lenBuf[:], uint64(len(b)))
			h.Write(lenBuf[:])
			h.Write(b)
			items = append(items, m)
		}
		vers[i] = hex.EncodeToString(h.Sum(nil)[:8])
		snap.Resources[servedTypes[i].slot] = cachev3.NewResources(vers[i], items)
	}
	return &snap, vers
}
