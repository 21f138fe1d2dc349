package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// ParseNode reads a Proxy from an xDS node (docs/xds.md, "Node identity").
func ParseNode(n *corev3.Node) Proxy {
	panic("TODO: translator work")
}

// Translate returns everything proxy p needs from snapshot s. It never fails:
// the snapshot holds only validated config. Unknown proxies (no workload) get
// the outbound view of the default namespace without inbound listeners.
func Translate(s *snapshot.Snapshot, p Proxy) *Resources {
	panic("TODO: translator work")
}
