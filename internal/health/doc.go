// Package health runs active health checks for the mesh, the part of issue 3
// that Istio lacks and Consul and Kuma have: WorkloadGroup probes (httpGet,
// tcpSocket, grpc) run by trellisd against the WorkloadEntries each group
// selects, turning failing workloads' endpoints UNHEALTHY so that no proxy
// sends them traffic.
//
//	config.Set ──1 Update (latest wins)──▶ Checker.Run
//	                                          │ 2 targets: WorkloadGroup probe × selected WorkloadEntries
//	                                          │ 3 one goroutine per target: initialDelay, then every period,
//	                                          │   each attempt bounded by timeoutSeconds
//	                                          │ 4 success/failure thresholds flip the workload's status
//	                                          ▼
//	                         status map ──5 Changed() signal──▶ trellisd re-publishes the snapshot
//	registry.Source ──6 Source.Registry = Checker.Apply(inner)──▶ Endpoint.Healthy=false
//	                                          ──▶ translator: EDS health_status UNHEALTHY ──▶ proxies skip it
//
// Semantics follow the kubelet's readiness probes (Istio reuses their
// shape): defaults period 10s, timeout 1s, successThreshold 1,
// failureThreshold 3; httpGet succeeds on 2xx and 3xx (HTTPS without
// certificate verification); grpc uses grpc.health.v1. A probed workload is
// unhealthy until its first success, as Istio treats a WorkloadEntry with
// health checks. A workload is probed at its WorkloadEntry address (in the
// local mesh, the sidecar's address, so an httpGet on a service port goes
// through the inbound listener to the app) unless the probe names a host.
// Exec probes are not run: they need an agent on the workload's host.
package health
