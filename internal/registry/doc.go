// Package registry is the mesh's service discovery model: which services
// exist, on which ports with which protocols, and which endpoints serve them.
//
// A [Source] produces a [Registry] snapshot. In local mode the source is
// ServiceEntry (services) plus WorkloadEntry (endpoints) from the config
// directory; a Kubernetes source (Services and EndpointSlices) plugs in beside
// it later, and [Merge] combines sources. A Registry is immutable.
//
//	config.Set ──1 ServiceEntry hosts──▶ []*Service (Hostname as written)
//	           ──2 spec.endpoints + WorkloadEntries selected by
//	               workloadSelector (same namespace)──▶ Endpoints
//	           ──3 every WorkloadEntry──▶ Workloads
//	sources ──4 Merge (first source wins)──▶ *Registry
//
// Port protocols follow Istio: the protocol field, else the port name prefix
// ("http-web" is HTTP); see [ParseProtocol].
package registry
