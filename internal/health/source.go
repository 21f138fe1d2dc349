package health

import (
	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Source decorates a registry source with probe results: endpoints of
// workloads whose WorkloadGroup probe fails are marked Healthy=false, which
// the translator sends as EDS health_status UNHEALTHY. Registry also hands
// each config set to the Checker, so that probes follow the config.
type Source struct {
	Inner   registry.Source
	Checker *Checker
}

var _ registry.Source = (*Source)(nil)

// Registry returns Inner's view of cfg with current health applied.
func (s *Source) Registry(cfg *config.Set) *registry.Registry {
	s.Checker.Update(cfg)
	return s.Checker.Apply(s.Inner.Registry(cfg))
}
