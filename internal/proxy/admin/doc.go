// Package admin serves the proxy's own endpoints on the workload's address
// (never a wildcard), as Envoy and the Istio agent do:
//
//	ADDRESS:15000  admin: /config_dump, /listeners, /clusters, /ready,
//	               /stats, /stats/prometheus
//	ADDRESS:15021  /healthz/ready: 200 once the first config is applied
//	               with all listeners bound, else 503
//	ADDRESS:15090  /stats/prometheus: the injected registry
//
// The endpoints read the listener manager through the small Source
// interface; handlers are exported for tests and embedding.
package admin
