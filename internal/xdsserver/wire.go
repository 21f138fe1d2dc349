package xdsserver

import (
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Responses are written from shared encodings. A resource is encoded once
// (resource.any.Value); a response lists, per resource, a small head (the
// field tag and lengths, the Any's type URL and, for delta, the Resource's
// name and version) and that shared value, and the transport writes the
// buffers as they are. No response is encoded into a buffer of its own: 1000
// sidecars synced at once share one encoding of each cluster rather than
// encoding 1000 copies, each held until written (issue 5: the initial
// sync's heap peak was 600 MB with 1000 delta proxies, and encoding was
// most of the CPU of a route-table push to every sidecar). Protobuf lets
// fields come in any order and concatenates repeated ones, so clients
// decode plain responses.

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

var (
	deltaResourcesField = fieldNumber(&discoveryv3.DeltaDiscoveryResponse{}, "resources")
	sotwResourcesField  = fieldNumber(&discoveryv3.DiscoveryResponse{}, "resources")
	resourceNameField   = fieldNumber(&discoveryv3.Resource{}, "name")
	resourceVerField    = fieldNumber(&discoveryv3.Resource{}, "version")
	resourceAnyField    = fieldNumber(&discoveryv3.Resource{}, "resource")
	anyTypeField        = fieldNumber(&anypb.Any{}, "type_url")
	anyValueField       = fieldNumber(&anypb.Any{}, "value")
)

// wire is a resource's shared encoding as responses carry it. Each field is
// boxed once, here, so that responses list them without allocating.
type wire struct {
	value mem.Buffer // the encoded resource: Any.value
	sotw  mem.Buffer // DiscoveryResponse.resources entry up to value
	delta mem.Buffer // DeltaDiscoveryResponse.resources entry up to value
}

func newWire(a *anypb.Any, name, version string) wire {
	anyHead := protowire.AppendString(protowire.AppendTag(nil, anyTypeField, protowire.BytesType), a.GetTypeUrl())
	anyHead = protowire.AppendVarint(protowire.AppendTag(anyHead, anyValueField, protowire.BytesType), uint64(len(a.GetValue())))
	anySize := uint64(len(anyHead) + len(a.GetValue()))

	sotw := protowire.AppendVarint(protowire.AppendTag(nil, sotwResourcesField, protowire.BytesType), anySize)
	sotw = append(sotw, anyHead...)

	res := protowire.AppendString(protowire.AppendTag(nil, resourceNameField, protowire.BytesType), name)
	res = protowire.AppendString(protowire.AppendTag(res, resourceVerField, protowire.BytesType), version)
	res = protowire.AppendVarint(protowire.AppendTag(res, resourceAnyField, protowire.BytesType), anySize)
	res = append(res, anyHead...)
	delta := protowire.AppendTag(make([]byte, 0, len(res)+16), deltaResourcesField, protowire.BytesType)
	delta = append(protowire.AppendVarint(delta, uint64(len(res)+len(a.GetValue()))), res...)

	return wire{value: mem.SliceBuffer(a.GetValue()), sotw: mem.SliceBuffer(sotw), delta: mem.SliceBuffer(delta)}
}

// encodedResponse is a response whose resources go on the wire as their
// shared encodings: head is the response without resources.
type encodedResponse struct {
	head  proto.Message
	delta bool // DeltaDiscoveryResponse, else DiscoveryResponse
	out   []*resource
}

// buffers is the response's encoding.
func (e *encodedResponse) buffers() (mem.BufferSlice, error) {
	h, err := proto.Marshal(e.head)
	if err != nil {
		return nil, fmt.Errorf("xdsserver: codec: marshal response head: %w", err)
	}
	bs := make(mem.BufferSlice, 0, 2*len(e.out)+1)
	bs = append(bs, mem.SliceBuffer(h))
	for _, r := range e.out {
		if e.delta {
			bs = append(bs, r.wire.delta, r.wire.value)
		} else {
			bs = append(bs, r.wire.sotw, r.wire.value)
		}
	}
	return bs, nil
}

// message is the response as a plain message (tests).
func (e *encodedResponse) message() proto.Message {
	m := proto.Clone(e.head)
	for _, r := range e.out {
		switch m := m.(type) {
		case *discoveryv3.DeltaDiscoveryResponse:
			m.Resources = append(m.Resources, r.item)
		case *discoveryv3.DiscoveryResponse:
			m.Resources = append(m.Resources, r.any)
		}
	}
	return m
}
