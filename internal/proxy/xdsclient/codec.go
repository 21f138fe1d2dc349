package xdsclient

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codec is the ADS stream's protobuf codec, and unpooled is its buffer
// pool: together they keep the proxy's xDS traffic out of gRPC's
// process-wide pool of size-classed sync.Pools. gRPC's own codec
// materializes every response spread over several frames into a buffer
// from that pool, and the transport reads frames into pooled buffers too;
// the pool then holds about twice the largest response until two garbage
// collections later, which an idle proxy does not run for minutes (issue 5:
// 1.2 MB of a 4.3 MB live heap with 100 services, the largest single item
// in the idle sidecar's heap profile). xDS traffic is rare: plain
// allocations, which one GC frees, cost nothing that matters.
type codec struct{}

var _ encoding.CodecV2 = codec{}

// Name is "proto", the content type trellisd expects.
func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("xdsclient: codec: marshal: %T is not a proto.Message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: codec: marshal: %w", err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("xdsclient: codec: unmarshal: %T is not a proto.Message", v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData() // proto.Unmarshal copies what it keeps
	} else {
		b = data.Materialize() // a plain allocation, not a pooled buffer
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("xdsclient: codec: unmarshal: %w", err)
	}
	return nil
}

// unpooled are the dial options that route the stream's buffers around
// gRPC's shared pool (see codec).
func unpooled() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{})),
		experimental.WithBufferPool(mem.NopBufferPool{}),
	}
}
