package xdsserver

import (
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// deltaResourcesField is DeltaDiscoveryResponse.resources' field number.
var deltaResourcesField = protowire.Number((&discoveryv3.DeltaDiscoveryResponse{}).ProtoReflect().Descriptor().
	Fields().ByName("resources").Number())

// deltaWire encodes r as one entry of DeltaDiscoveryResponse.resources:
// tag, length and the encoded Resource. The buffer is boxed once, here, so
// that responses list it without allocating; nil if r cannot be encoded.
func deltaWire(item *discoveryv3.Resource) mem.Buffer {
	b, err := proto.Marshal(item)
	if err != nil {
		return nil
	}
	out := protowire.AppendTag(make([]byte, 0, len(b)+16), deltaResourcesField, protowire.BytesType)
	return mem.SliceBuffer(protowire.AppendBytes(out, b))
}

// encodedDelta is a delta response whose resources go on the wire as their
// shared encodings (resource.wire), never copied into a buffer of the
// response's own. The codec (codec.go) sends it as the response head (every
// field but resources) followed by those encodings: protobuf lets fields
// come in any order and concatenates repeated ones, so a client decodes a
// plain DeltaDiscoveryResponse. 1000 sidecars synced at once thus share one
// encoding of each cluster rather than encoding 1000 copies, each held
// until written (issue 5: the initial sync's heap peak, and the CPU of a
// route-table push to every sidecar).
type encodedDelta struct {
	head *discoveryv3.DeltaDiscoveryResponse // without Resources
	out  []*resource
}

// buffers is the response's encoding. The head is encoded here; the
// resources' shared buffers are read-only to the transport.
func (e *encodedDelta) buffers() (mem.BufferSlice, error) {
	h, err := proto.Marshal(e.head)
	if err != nil {
		return nil, fmt.Errorf("xdsserver: codec: marshal delta response: %w", err)
	}
	bs := make(mem.BufferSlice, 0, len(e.out)+1)
	bs = append(bs, mem.SliceBuffer(h))
	for _, r := range e.out {
		if r.wire == nil { // cannot happen: the resource was encoded once already
			return nil, fmt.Errorf("xdsserver: codec: resource %s has no encoding", r.name)
		}
		bs = append(bs, r.wire)
	}
	return bs, nil
}

// message is the response as a plain message (tests, logs).
func (e *encodedDelta) message() *discoveryv3.DeltaDiscoveryResponse {
	m := proto.CloneOf(e.head)
	for _, r := range e.out {
		m.Resources = append(m.Resources, r.item)
	}
	return m
}
