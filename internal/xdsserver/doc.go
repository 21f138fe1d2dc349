// Package xdsserver serves Envoy v3 aggregated discovery (ADS) to Trellis
// proxies and proxyless gRPC clients, both state-of-the-world
// (StreamAggregatedResources) and incremental (DeltaAggregatedResources),
// through go-control-plane's generated gRPC service and types. Sidecars'
// and gateways' streams run on the package's own stream loops (sotw.go,
// delta.go, streamloop.go) over the node snapshots of the sidecar cache
// (cache.go); proxyless clients', told apart by their first request, on
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
//	                       SetSnapshot(node) in the sidecar cache (cache.go), which
//	                       wakes the node's streams (one slot each: latest wins),
//	                       or go-control-plane's proxyless cache (GENERATOR: grpc)
//	                                      ▼
//	  stream loops (sotw.go, delta.go), one goroutine per stream and one reading requests:
//	    7 per type, in ADS order, diff the node's current set against what the
//	      client holds (deltaSub: the shared set last sent, plus rare exceptions;
//	      subscribed names an interned shared list). SotW: answer the open watch
//	      (one response per accepted request), LDS/CDS in full when the version
//	      differs, EDS/RDS only what the client lacks. Delta, unless a response is
//	      unanswered: changes and removed_resources. Each resource is written as
//	      its shared pre-encoded bytes (wire.go)
//	                                      ▼
//	  proxy ◀── response ── 8 sent version, nonce, pilot_xds_pushes (callbacks.go);
//	                        sidecars' and gateways' responses written from the
//	                        resources' shared encodings, never copied (wire.go);
//	                        proxyless clients' large responses encoded in their own
//	                        buffers, at most 64 MiB in flight to slow readers,
//	                        admitted in order while readers make progress (codec.go)
//	  proxy ── ACK/NACK ──▶ 9 acked version, NACK reason, pilot_total_xds_rejects;
//	                        request names replaced by the node's sets' copies (intern);
//	                        subscription changes applied (sotwSub.accept,
//	                        deltaSub.request); stale SotW requests ignored
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
// shared sets of shared, pre-encoded resources. Per stream and type it
// keeps a pointer to the shared set it last sent and to a shared list of
// the names it subscribes, and maps only for the exceptions (a name
// unsubscribed, initial_resource_versions before the first delta response,
// a client holding a few names of a large set): with 1000 services a few
// hundred bytes per type (BenchmarkDeltaStreamState), where go-control-
// plane's servers kept a name set and a name→version map per stream and
// type (~137 KB for 1000 resources), SotW a new map for every response
// (issue 5). The streams follow go-control-plane's rules (legacy and
// explicit wildcard, subscribe and unsubscribe, a NACK recorded and nothing
// re-sent, one response per accepted SotW request and stale nonces
// ignored, at most one unanswered delta response per type); FuzzDeltaSub
// and FuzzSotwSub check them against go-control-plane's subscriptions and
// the responses the sidecar cache computed for its server.
//
// A node exists from its first request until its last stream closes, when
// its snapshot is cleared from the cache. Each node's computations are
// serialised and always read the latest snapshot, so an older result can
// never overwrite a newer one.
//
// Metrics carry istiod's names: pilot_xds, pilot_xds_pushes,
// pilot_total_xds_rejects, pilot_proxy_convergence_time, pilot_services.
package xdsserver
