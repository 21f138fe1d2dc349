// Package xdsserver serves Envoy v3 aggregated discovery (ADS) to Trellis
// proxies and proxyless gRPC clients, both state-of-the-world
// (StreamAggregatedResources) and incremental (DeltaAggregatedResources),
// on top of go-control-plane's snapshot cache.
//
//	config source ──Update(snapshot)──▶ latest (latest wins, never blocks)
//	                                      │ 2 kick (one slot: bursts coalesce)
//	                                      ▼
//	  1 first request of a new node ──▶ compute(node) ◀── push loop: every node,
//	                                      │                one worker per CPU
//	                                      │ 2b only endpoints changed since the node's last
//	                                      │   snapshot, none of a host it was sent, nor its
//	                                      │   own workload? skip it (change.go)
//	                                      │ 3 TranslateCached(snapshot, proxy, cache):
//	                                      │   clusters/endpoints shared between proxies
//	                                      │ 4 Validate() each new resource; drop + log the bad;
//	                                      │   identical ones shared (intern.go), shared
//	                                      │   messages encoded once per push
//	                                      │   drop routes/endpoints nothing kept references
//	                                      │ 5 version per type = hash of its resources
//	                                      │ 6 unchanged? stop: this proxy is not affected
//	                                      ▼
//	                       SetSnapshot(node) in the sidecar cache (ADS order)
//	                       or the proxyless cache (GENERATOR: grpc)
//	                                      │ 7 go-control-plane answers open watches
//	                                      ▼
//	  proxy ◀── response ── callbacks: 8 sent version, nonce, pilot_xds_pushes
//	  proxy ── ACK/NACK ──▶ callbacks: 9 acked version, NACK reason, pilot_total_xds_rejects
//	                                      │
//	                                      ▼
//	                                  Status() (/debug/syncz)
//
// Step 2b applies with the built-in translator only: a custom
// Options.Translate may read anything, so every node is recomputed. A
// change is endpoint-only when the config differs only in WorkloadEntries,
// the mesh settings are equal and the registry's services are equal; the
// hosts whose endpoints differ and the workloads that differ then select
// the nodes to recompute. Anything else recomputes every node.
//
// A node exists from its first request until its last stream closes, when
// its snapshot is cleared from the cache. Each node's computations are
// serialised and always read the latest snapshot, so an older result can
// never overwrite a newer one.
//
// Metrics carry istiod's names: pilot_xds, pilot_xds_pushes,
// pilot_total_xds_rejects, pilot_proxy_convergence_time, pilot_services.
package xdsserver
