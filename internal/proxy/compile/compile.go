package compile

import (
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Input is the complete set of decoded xDS resources a proxy holds, each map
// keyed by resource name (a ClusterLoadAssignment by its cluster_name).
// Nil maps are empty.
type Input struct {
	Version   string
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
}

// Parsed is a set of parsed resources by name: the validated intermediate
// form between Parse and Build. The xDS client keeps one as its cache and
// updates it one resource at a time. Values are never modified once parsed.
type Parsed struct {
	Listeners map[string]*Listener
	Routes    map[string]*runtime.RouteTable
	Clusters  map[string]*Cluster
	Endpoints map[string][]runtime.Endpoint
}

// NewParsed returns an empty set.
func NewParsed() *Parsed {
	return &Parsed{
		Listeners: map[string]*Listener{},
		Routes:    map[string]*runtime.RouteTable{},
		Clusters:  map[string]*Cluster{},
		Endpoints: map[string][]runtime.Endpoint{},
	}
}

// Compile parses every resource of in and builds the runtime config. The
// error names the first failing resource (in name order) and field.
func Compile(in Input) (*runtime.Config, error) {
	p, err := Parse(in)
	if err != nil {
		return nil, err
	}
	return Build(in.Version, p), nil
}

// Parse validates and converts every resource of in.
func Parse(in Input) (*Parsed, error) {
	p := NewParsed()
	for _, name := range slices.Sorted(maps.Keys(in.Listeners)) {
		l, err := ParseListener(in.Listeners[name])
		if err != nil {
			return nil, err
		}
		if err := checkKey("listener", name, l.Runtime.Name); err != nil {
			return nil, err
		}
		p.Listeners[name] = l
	}
	for _, name := range slices.Sorted(maps.Keys(in.Routes)) {
		r, err := ParseRouteConfiguration(in.Routes[name])
		if err != nil {
			return nil, err
		}
		if err := checkKey("route", name, r.Name); err != nil {
			return nil, err
		}
		p.Routes[name] = r
	}
	for _, name := range slices.Sorted(maps.Keys(in.Clusters)) {
		c, err := ParseCluster(in.Clusters[name])
		if err != nil {
			return nil, err
		}
		if err := checkKey("cluster", name, c.Runtime.Name); err != nil {
			return nil, err
		}
		p.Clusters[name] = c
	}
	for _, name := range slices.Sorted(maps.Keys(in.Endpoints)) {
		cla := in.Endpoints[name]
		eps, err := ParseEndpoints(cla)
		if err != nil {
			return nil, err
		}
		if err := checkKey("endpoints", name, cla.GetClusterName()); err != nil {
			return nil, err
		}
		p.Endpoints[name] = eps
	}
	return p, nil
}

func checkKey(kind, key, name string) error {
	if key != name {
		return fmt.Errorf("%s %q: stored under name %q", kind, name, key)
	}
	return nil
}

// Build assembles a runtime config from parsed resources; it cannot fail.
// A listener whose route table is missing keeps its RouteName (requests
// answer 404 NR); an EDS cluster whose ClusterLoadAssignment is missing has
// no endpoints (requests answer 503 UH). The result shares no maps with p.
func Build(version string, p *Parsed) *runtime.Config {
	cfg := &runtime.Config{
		Version:  version,
		Routes:   make(map[string]*runtime.RouteTable, len(p.Routes)),
		Clusters: make(map[string]*runtime.Cluster, len(p.Clusters)),
	}
	maps.Copy(cfg.Routes, p.Routes)
	for _, name := range slices.Sorted(maps.Keys(p.Listeners)) {
		l := p.Listeners[name]
		cfg.Listeners = append(cfg.Listeners, l.Runtime)
		if l.Inline != nil {
			cfg.Routes[InlineRouteKey(name)] = l.Inline
		}
		maps.Copy(cfg.Routes, l.Inlines)
	}
	for name, c := range p.Clusters {
		if c.EDS == "" {
			cfg.Clusters[name] = c.Runtime
			continue
		}
		rc := *c.Runtime
		rc.Endpoints = p.Endpoints[c.EDS]
		cfg.Clusters[name] = &rc
	}
	return cfg
}

// RouteNames returns the RDS names the listeners reference, sorted.
func (p *Parsed) RouteNames() []string {
	set := map[string]bool{}
	for _, l := range p.Listeners {
		if l.RDS != "" {
			set[l.RDS] = true
		}
		for _, n := range l.RouteNames {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// EndpointNames returns the ClusterLoadAssignment names the EDS clusters
// reference, sorted.
func (p *Parsed) EndpointNames() []string {
	set := map[string]bool{}
	for _, c := range p.Clusters {
		if c.EDS != "" {
			set[c.EDS] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
