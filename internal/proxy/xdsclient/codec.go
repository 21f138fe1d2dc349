package xdsclient

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	"github.com/trellis-mesh/trellis/internal/protocodec"
)

// unpooled are the dial options that keep the proxy's xDS traffic out of
// gRPC's process-wide pool of size-classed sync.Pools: protocodec's codec
// for messages and no pool for the transport's frames. gRPC's own codec
// materializes every response spread over several frames into a buffer
// from that pool, and the pool then holds about twice the largest response
// until two garbage collections later, which an idle proxy does not run
// for minutes (issue 5: 1.2 MB of a 4.3 MB live heap with 100 services,
// the largest single item in the idle sidecar's heap profile).
func unpooled() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(protocodec.Plain{})),
		experimental.WithBufferPool(mem.NopBufferPool{}),
	}
}
