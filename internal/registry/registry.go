package registry

import (
	"github.com/trellis-mesh/trellis/internal/config"
)

// Protocol is a port's application protocol, named as Istio names them.
type Protocol string

// Protocols Istio recognises on a ServicePort (by its protocol field or by
// the name prefix convention "http-foo").
const (
	ProtocolHTTP    Protocol = "HTTP"
	ProtocolHTTP2   Protocol = "HTTP2"
	ProtocolGRPC    Protocol = "GRPC"
	ProtocolHTTPS   Protocol = "HTTPS"
	ProtocolTCP     Protocol = "TCP"
	ProtocolTLS     Protocol = "TLS"
	ProtocolMongo   Protocol = "MONGO"
	ProtocolUnknown Protocol = "UNKNOWN" // unset; treated as TCP with protocol sniffing left for later
)

// IsHTTP reports whether the proxy speaks HTTP (any version) on the port.
func (p Protocol) IsHTTP() bool {
	return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC
}

// IsHTTP2 reports whether upstream connections must use HTTP/2.
func (p Protocol) IsHTTP2() bool { return p == ProtocolHTTP2 || p == ProtocolGRPC }

// Resolution says how a service's endpoints are found.
type Resolution uint8

const (
	ResolutionStatic Resolution = iota // endpoints are WorkloadEntries or spec.endpoints addresses
	ResolutionDNS                      // endpoint addresses are DNS names resolved by the proxy
	ResolutionNone                     // pass-through to the original destination
)

// Port is one service port.
type Port struct {
	Name       string
	Number     uint32
	Protocol   Protocol
	TargetPort uint32 // 0: same as Number
}

// Service is one hostname from a ServiceEntry (a ServiceEntry with three hosts
// yields three Services).
type Service struct {
	Hostname         string // fully qualified, e.g. reviews.default.svc.cluster.local
	Namespace        string
	Addresses        []string // virtual IPs or CIDRs from spec.addresses
	Ports            []Port   // sorted by Number
	Resolution       Resolution
	External         bool              // location MESH_EXTERNAL
	WorkloadSelector map[string]string // selects WorkloadEntries; nil when endpoints are inline
	ExportTo         []string          // as in spec.exportTo; empty means everywhere
	Origin           config.Key        // the ServiceEntry it came from
}

// Port returns the port with the given number, or false.
func (s *Service) Port(number uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == number {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one workload instance serving a service.
type Endpoint struct {
	Address        string            // IP, or a DNS name when the service resolves by DNS
	Ports          map[string]uint32 // service port name → workload port; missing names use the service port's target
	Labels         map[string]string
	ServiceAccount string
	Weight         uint32 // 0 means 1
	Locality       string // "region/zone/subzone", any part may be empty
	Network        string
	Namespace      string
	WorkloadName   string // WorkloadEntry name; empty for inline spec.endpoints
	Healthy        bool   // false when active health checks mark it down
}

// PortFor returns the workload port that serves service port p.
func (e *Endpoint) PortFor(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// Workload is one WorkloadEntry: a VM or process the mesh knows, whether or
// not any service selects it. Proxies are identified by their workload.
type Workload struct {
	Name           string
	Namespace      string
	Address        string
	Ports          map[string]uint32
	Labels         map[string]string
	ServiceAccount string
	Locality       string
	Network        string
	Weight         uint32
}

// Registry is an immutable view of services, their endpoints, and the known
// workloads.
type Registry struct {
	Services  []*Service             // sorted by Hostname then Namespace
	Endpoints map[string][]*Endpoint // by Service.Hostname + "/" + Service.Namespace; use EndpointsOf
	Workloads map[string]*Workload   // by "namespace/name"
}

// EndpointsOf returns the endpoints of s.
func (r *Registry) EndpointsOf(s *Service) []*Endpoint {
	if r == nil {
		return nil
	}
	return r.Endpoints[s.Hostname+"/"+s.Namespace]
}

// Workload returns the workload namespace/name, or nil.
func (r *Registry) Workload(namespace, name string) *Workload {
	if r == nil {
		return nil
	}
	return r.Workloads[namespace+"/"+name]
}

// Source yields a registry view built from a validated config set. A Source
// must be safe for concurrent use and Registry must not block; the returned
// value is immutable. Sources that watch something other than the config set
// (Kubernetes) call the notify function they were built with when their view
// changes.
type Source interface {
	Registry(cfg *config.Set) *Registry
}
