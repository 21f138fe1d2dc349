// Package xdsserver serves Envoy v3 aggregated discovery (ADS) to Trellis
// proxies and proxyless gRPC clients, both state-of-the-world
// (StreamAggregatedResources) and incremental (DeltaAggregatedResources),
// through go-control-plane's generated gRPC service and types. State of
// the world runs on go-control-plane's server with the package's own
// cache.Cache for sidecars and gateways (cache.go); their delta streams run
// on the package's own stream loop (delta.go), proxyless clients on
// go-control-plane's server and snapshot cache.
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
//	                       SotW EDS/RDS send only what the stream lacks; only
//	                       watches of types whose shared set changed are walked)
//	                       or go-control-plane's proxyless cache (GENERATOR: grpc)
//	                                      │ 7 SotW: open watches answered; delta: the
//	                                      │   node's streams woken (one slot each:
//	                                      ▼   latest wins)
//	  delta stream loop (delta.go), one goroutine per stream and one reading requests:
//	    7d per type, in ADS order, unless a response is unanswered: diff the node's
//	       current set against what the client holds (deltaSub: the shared set last
//	       sent, plus rare exceptions; subscribed names an interned shared list),
//	       send changes and removed_resources, each resource as its shared
//	       pre-encoded bytes (wire.go)
//	                                      ▼
//	  proxy ◀── response ── 8 sent version, nonce, pilot_xds_pushes (callbacks.go);
//	                        sidecars' and gateways' responses written from the
//	                        resources' shared encodings, never copied (wire.go);
//	                        proxyless clients' large responses encoded in their own
//	                        buffers, at most 64 MiB in flight to slow readers,
//	                        admitted in order while readers make progress (codec.go)
//	  proxy ── ACK/NACK ──▶ 9 acked version, NACK reason, pilot_total_xds_rejects;
//	                        request names replaced by the node's sets' copies (intern);
//	                        delta: subscription changes applied (deltaSub.request)
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
// shared sets of shared, pre-encoded resources. go-control-plane's
// state-of-the-world server keeps, per stream, the names and versions it
// sent of EDS and RDS and the names subscribed: about 67 bytes per resource
// per stream, the floor of a SotW proxy's cost; each response builds a new
// version map, since go-control-plane drops a pending response when the
// next request of its type arrives and the stream must keep what it was
// sent. A delta stream keeps per type a pointer to the shared set it last
// sent and to a shared list of the names it subscribes, and maps only for
// the exceptions (a name unsubscribed, initial_resource_versions before the
// first response, a client holding a few names of a large set): with 1000
// services its state is a few hundred bytes where go-control-plane's delta
// server kept ~210 KB (issue 5). Its responses follow go-control-plane's
// rules (legacy and explicit wildcard, subscribe and unsubscribe, a NACK
// recorded and nothing re-sent, at most one unanswered response per type);
// FuzzDeltaSub checks them against go-control-plane's subscription.
//
// A node exists from its first request until its last stream closes, when
// its snapshot is cleared from the cache. Each node's computations are
// serialised and always read the latest snapshot, so an older result can
// never overwrite a newer one.
//
// Metrics carry istiod's names: pilot_xds, pilot_xds_pushes,
// pilot_total_xds_rejects, pilot_proxy_convergence_time, pilot_services.
package xdsserver
