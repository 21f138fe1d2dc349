package config

import (
	"cmp"
	"slices"

	networkingv1 "istio.io/api/networking/v1"
)

// Set is an immutable, validated collection of resources, at most one per
// Key. The zero value and nil are empty sets. A Set is safe for concurrent
// reads.
type Set struct {
	byKey  map[Key]*Resource
	byKind map[Kind][]*Resource // sorted by namespace, then name
}

// NewSet builds a Set. When two resources share a Key the first one wins; use
// Merge (or LoadDir) to also report duplicates to the user.
func NewSet(rs []*Resource) *Set {
	s := &Set{byKey: make(map[Key]*Resource, len(rs)), byKind: make(map[Kind][]*Resource)}
	for _, r := range rs {
		k := r.Key()
		if _, dup := s.byKey[k]; dup {
			continue
		}
		s.byKey[k] = r
		s.byKind[r.Kind] = append(s.byKind[r.Kind], r)
	}
	for _, list := range s.byKind {
		slices.SortFunc(list, func(a, b *Resource) int {
			return cmp.Or(cmp.Compare(a.Meta.Namespace, b.Meta.Namespace), cmp.Compare(a.Meta.Name, b.Meta.Name))
		})
	}
	return s
}

// Get returns the resource with key k, or nil.
func (s *Set) Get(k Key) *Resource {
	if s == nil {
		return nil
	}
	return s.byKey[k]
}

// List returns the resources of one kind sorted by namespace and name. The
// slice is shared: callers must not modify it.
func (s *Set) List(k Kind) []*Resource {
	if s == nil {
		return nil
	}
	return s.byKind[k]
}

// All returns every resource, ordered by kind, namespace and name.
func (s *Set) All() []*Resource {
	if s == nil {
		return nil
	}
	var out []*Resource
	for _, k := range Kinds() {
		out = append(out, s.byKind[k]...)
	}
	return out
}

// Len reports how many resources the set holds.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byKey)
}

// GatewayWorkloadSelectors returns the workload selectors of the Istio
// Gateways converted from the Gateway API Gateway ns/name (they carry their
// source in AnnotationGeneratedFrom): which workloads serve it. None when
// the set has no such Gateway, or Trellis serves none of its listeners.
func (s *Set) GatewayWorkloadSelectors(ns, name string) []map[string]string {
	src := Key{Kind: KindKubernetesGateway, Namespace: ns, Name: name}.String()
	var out []map[string]string
	for _, g := range s.List(KindGateway) {
		if g.Meta.Annotations[AnnotationGeneratedFrom] != src {
			continue
		}
		if sel := g.Spec.(*networkingv1.Gateway).GetSelector(); len(sel) > 0 {
			out = append(out, sel)
		}
	}
	return out
}
