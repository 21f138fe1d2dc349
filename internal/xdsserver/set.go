package xdsserver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// resource is one validated resource, encoded once and shared by every node
// that is sent it: a response to 1000 proxies carries 1000 pointers to the
// same encoding, not 1000 encodings (issue 5). Never modified once built.
type resource struct {
	name    string
	msg     proto.Message
	any     *anypb.Any // what goes on the wire
	digest  digest
	version string // delta xDS resource version: hex of the digest's head
	// item is the resource as a delta response carries it, shared by every
	// delta response as any is (a response to 1000 streams held 1000
	// copies of each: 128 KB per stream for 1000 clusters; issue 5).
	item *discoveryv3.Resource
	// wire is the resource as every response that carries it writes it
	// (wire.go).
	wire wire
}

func newResource(typeURL, name string, m proto.Message, encoded []byte, d digest) *resource {
	r := &resource{name: name, msg: m, any: &anypb.Any{TypeUrl: typeURL, Value: encoded},
		digest: d, version: hex.EncodeToString(d[:8])}
	r.item = &discoveryv3.Resource{Name: r.name, Version: r.version, Resource: r.any}
	r.wire = newWire(r.any, r.name, r.version)
	return r
}

// resourceSet is one xDS type's resources as one node is sent them.
// Immutable; nodes whose sets are equal (the same version) share one
// (interner.set), so a node costs a pointer per type, not a map.
type resourceSet struct {
	version string      // hash of the names and digests (build)
	sorted  []*resource // by name
	byName  map[string]*resource
}

func newResourceSet(version string, sorted []*resource) *resourceSet {
	rs := &resourceSet{version: version, sorted: sorted, byName: make(map[string]*resource, len(sorted))}
	for _, r := range sorted {
		rs.byName[r.name] = r
	}
	return rs
}

// setVersion is the version of a set of resources sorted by name: a hash of
// every name and digest, so identical sets always have the same version and
// an unchanged type is never re-sent.
func setVersion(sorted []*resource) string {
	h := sha256.New()
	var lenBuf [8]byte
	for _, r := range sorted {
		// Length-prefix the name so that ("ab","c") and ("a","bc") differ;
		// the digest has a fixed length.
		binary.BigEndian.PutUint64(lenBuf[:], uint64(len(r.name)))
		h.Write(lenBuf[:])
		h.Write([]byte(r.name))
		h.Write(r.digest[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// nodeSnapshot is everything one node is sent, one set per served type in
// servedTypes order. It implements go-control-plane's ResourceSnapshot so
// that the proxyless cache (a go-control-plane SnapshotCache) takes it as
// is; the sidecar cache (cache.go) reads the sets directly.
type nodeSnapshot struct {
	sets [len(servedTypes)]*resourceSet
}

var _ cachev3.ResourceSnapshot = (*nodeSnapshot)(nil)

// set returns the set of typeURL, or nil for a type not served.
func (s *nodeSnapshot) set(typeURL string) *resourceSet {
	if i := typeIndex(typeURL); i >= 0 {
		return s.sets[i]
	}
	return nil
}

func (s *nodeSnapshot) GetVersion(typeURL string) string {
	if rs := s.set(typeURL); rs != nil {
		return rs.version
	}
	return ""
}

func (s *nodeSnapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	rs := s.set(typeURL)
	if rs == nil {
		return nil
	}
	out := make(map[string]types.ResourceWithTTL, len(rs.sorted))
	for _, r := range rs.sorted {
		out[r.name] = types.ResourceWithTTL{Resource: r.msg}
	}
	return out
}

func (s *nodeSnapshot) GetResources(typeURL string) map[string]types.Resource {
	rs := s.set(typeURL)
	if rs == nil {
		return nil
	}
	out := make(map[string]types.Resource, len(rs.sorted))
	for _, r := range rs.sorted {
		out[r.name] = r.msg
	}
	return out
}

// ConstructVersionMap has nothing to do: every resource carries its version.
func (s *nodeSnapshot) ConstructVersionMap() error { return nil }

func (s *nodeSnapshot) GetVersionMap(typeURL string) map[string]string {
	rs := s.set(typeURL)
	if rs == nil {
		return nil
	}
	out := make(map[string]string, len(rs.sorted))
	for _, r := range rs.sorted {
		out[r.name] = r.version
	}
	return out
}

// typeIndex is typeURL's index in servedTypes, or -1.
func typeIndex(typeURL string) int {
	for i, st := range servedTypes {
		if st.url == typeURL {
			return i
		}
	}
	return -1
}
