package registry

import "maps"

// Merge combines registries from several sources into one. Sources earlier in
// the argument list win: a service (same Hostname and Namespace) or workload
// (same namespace/name) already present is not replaced, and its endpoints
// are those of the winning source. nil registries are skipped. The inputs are
// not modified; the result shares their immutable Services and Endpoints.
func Merge(regs ...*Registry) *Registry {
	out := &Registry{Endpoints: map[string][]*Endpoint{}, Workloads: map[string]*Workload{}}
	seen := map[string]bool{}
	for _, r := range regs {
		if r == nil {
			continue
		}
		for _, s := range r.Services {
			key := s.Hostname + "/" + s.Namespace
			if seen[key] {
				continue
			}
			seen[key] = true
			out.Services = append(out.Services, s)
			if eps := r.Endpoints[key]; eps != nil {
				out.Endpoints[key] = eps
			}
		}
		for k, w := range maps.All(r.Workloads) {
			if _, dup := out.Workloads[k]; !dup {
				out.Workloads[k] = w
			}
		}
	}
	sortServices(out.Services)
	return out
}
