// Package xdsserver serves Envoy v3 aggregated discovery (ADS) to Trellis
// proxies and proxyless gRPC clients, both state-of-the-world
// (StreamAggregatedResources) and incremental (DeltaAggregatedResources),
// on go-control-plane's server with its own implementation of
// go-control-plane's cache.Cache for sidecars and gateways (cache.go).
//
//	config source ──Update(snapshot)──▶ latest (latest wins, never blocks)
//	                                      │ 2 kick (one slot: bursts coalesce)
//	                                      ▼
//	  1 first request of a new node ──▶ compute(node) ◀── push loop: every node,
//	    (one per CPU at a time)           │                one worker per CPU
//	                                      │ 2b only endpoints changed since the node's last
//	                                      │   snapshot, none of a host it was sent, nor its
//	                                      │   own workload? skip it (change.go)
//	                                      │ 2c only endpoints of hosts it was sent changed?
//	                                      │   patch: TranslateClusters(changed hosts) into
//	                                      │   its last snapshot, go to 5 (patch.go)
//	                                      │ 2d only VirtualServices changed? VirtualServiceReach:
//	                                      │   none can reach it (exportTo, gateways, hosts it
//	                                      │   was sent, Sidecar egress, fault/CORS): skip it;
//	                                      │   only routes: TranslateListeners into its last
//	                                      │   snapshot (patchListeners), go to 5
//	                                      │ 3 TranslateCached(snapshot, proxy, cache):
//	                                      │   clusters/endpoints and sidecar route tables
//	                                      │   (per namespace and Sidecar) shared between proxies
//	                                      │ 4 Validate() each new resource; drop + log the bad;
//	                                      │   identical ones shared and encoded once
//	                                      │   (intern.go, set.go); drop routes/endpoints
//	                                      │   nothing kept references
//	                                      │ 5 version per type = hash of names and digests;
//	                                      │   equal sets shared between nodes
//	                                      │ 6 unchanged? stop: this proxy is not affected
//	                                      ▼
//	                       SetSnapshot(node) in the sidecar cache (cache.go: ADS order,
//	                       SotW EDS/RDS and delta send only what the stream lacks;
//	                       only watches of types whose shared set changed are walked)
//	                       or go-control-plane's proxyless cache (GENERATOR: grpc)
//	                                      │ 7 open watches answered with the shared encodings
//	                                      ▼
//	  proxy ◀── response ── callbacks: 8 sent version, nonce, pilot_xds_pushes;
//	                        large responses encoded in their own buffers, at
//	                        most 64 MiB in flight to slow readers, admitted in
//	                        order while readers make progress (codec.go)
//	  proxy ── ACK/NACK ──▶ callbacks: 9 acked version, NACK reason, pilot_total_xds_rejects;
//	                        request names replaced by the node's sets' copies (intern)
//	                                      │
//	                                      ▼
//	                                  Status() (/debug/syncz)
//
// Steps 2b to 2d apply with the built-in translator only: a custom
// Options.Translate may read anything, so every node is recomputed. A
// change is endpoint-only when the config differs only in WorkloadEntries,
// the mesh settings are equal and the registry's services are equal; the
// hosts whose endpoints differ and the workloads that differ then select
// the nodes to recompute. A change is VirtualService-only when the config
// differs only in VirtualServices and the registry and mesh are equal;
// translator.VirtualServiceReach then tells per node whether nothing, only
// its listeners and routes, or anything may differ (gateways, proxyless
// clients and sidecars whose Sidecar egress the VirtualService's hosts
// select are translated in full). Anything else recomputes every node.
//
// Per node the server keeps pointers only: its last snapshot is four
// shared sets of shared, pre-encoded resources. The go-control-plane server
// keeps, per stream, the names and versions it sent of EDS and RDS (state
// of the world) or of every type (delta), and the names subscribed. Those
// maps are the floor of trellisd's memory per proxy: about 67 bytes per
// resource per stream, 0.2 MB live per delta sidecar of 1000 services.
// Delta responses update the stream's version map in place (a delta stream
// sends every response it is given); state-of-the-world responses build a
// new one, since go-control-plane drops a pending response when the next
// request of its type arrives and the stream must keep what it was sent.
//
// A node exists from its first request until its last stream closes, when
// its snapshot is cleared from the cache. Each node's computations are
// serialised and always read the latest snapshot, so an older result can
// never overwrite a newer one.
//
// Metrics carry istiod's names: pilot_xds, pilot_xds_pushes,
// pilot_total_xds_rejects, pilot_proxy_convergence_time, pilot_services.
package xdsserver
