// Package protocodec is the gRPC codec for protobuf messages that both ends
// of Trellis's ADS stream use instead of gRPC's default one. gRPC's codec
// and transport keep buffers in a process-wide pool of size-classed
// sync.Pools, which hold about twice the largest message until two garbage
// collections later; an idle proxy or control plane does not run those for
// minutes, so the pool became the largest item of both heaps (issue 5).
// xDS messages are rare and large: plain allocations, which one GC frees,
// are the better trade. The package is pure (gRPC and protobuf only), so the
// proxy may link it.
package protocodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Plain encodes and decodes proto messages with plain allocations. Its
// Name is "proto", the content type gRPC's default codec has, so it
// replaces that codec on the wire unnoticed.
type Plain struct{}

var _ encoding.CodecV2 = Plain{}

// Name returns "proto".
func (Plain) Name() string { return "proto" }

// Marshal encodes v, a proto.Message, into one freshly allocated buffer.
func (Plain) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protocodec: marshal: %T is not a proto.Message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protocodec: marshal: %w", err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal decodes data into v, a proto.Message. One buffer is read in
// place (proto.Unmarshal copies what it keeps); several are joined into a
// plain allocation, not a pooled buffer.
func (Plain) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("protocodec: unmarshal: %T is not a proto.Message", v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("protocodec: unmarshal: %w", err)
	}
	return nil
}
