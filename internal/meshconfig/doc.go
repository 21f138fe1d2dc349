// Package meshconfig reads Istio's MeshConfig (istio.io/api/mesh/v1alpha1)
// from YAML, as `trellisd --mesh-config FILE` takes it, into snapshot.Mesh.
//
//	FILE (YAML, the "mesh" key of Istio's istio ConfigMap)
//	  1 YAML → JSON → protojson into *meshv1alpha1.MeshConfig (unknown fields fail)
//	  2 validate: extension provider names unique, service and port set,
//	    statusOnError an HTTP status; errors carry field paths
//	  3 map onto snapshot.DefaultMesh(): trustDomain, rootNamespace,
//	    proxyHttpPort, pathNormalization, outboundTrafficPolicy,
//	    extensionProviders (envoyExtAuthzHttp / envoyExtAuthzGrpc)
//	  ──▶ snapshot.Mesh, plus warnings for settings Trellis ignores
//
// Extension providers of other kinds (tracing, access logging, ...) are
// reported as warnings and otherwise ignored.
package meshconfig
