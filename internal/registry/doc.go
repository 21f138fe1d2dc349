// Package registry is the mesh's service discovery model: which services
// exist, on which ports with which protocols, and which endpoints serve them.
//
// A [Source] produces a [Registry] snapshot. In local mode the source is
// ServiceEntry (services) plus WorkloadEntry (endpoints) from the config
// directory; a Kubernetes source (Services and EndpointSlices) plugs in beside
// it later, and [Merge] combines sources. A Registry is immutable.
package registry
