package translator

import (
	"google.golang.org/protobuf/proto"
)

// ProxyType is the kind of xDS client.
type ProxyType uint8

const (
	Sidecar   ProxyType = iota // trellis-proxy in front of one workload
	Router                     // trellis-proxy --gateway
	Proxyless                  // gRPC's xDS client (node metadata GENERATOR: grpc)
)

// Proxy identifies the xDS client a translation is for.
type Proxy struct {
	ID        string // node.id as sent
	Type      ProxyType
	Namespace string // of the WorkloadEntry; empty for proxyless clients without one
	Name      string // WorkloadEntry name
	Address   string // IP from the node id, may be empty
}

// Resources is one proxy's full configuration. Each map is keyed by
// resource name; values are *listenerv3.Listener, *routev3.RouteConfiguration,
// *clusterv3.Cluster and *endpointv3.ClusterLoadAssignment.
type Resources struct {
	Listeners map[string]proto.Message
	Routes    map[string]proto.Message
	Clusters  map[string]proto.Message
	Endpoints map[string]proto.Message
}
