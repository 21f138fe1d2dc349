// Package translator turns one immutable snapshot into the Envoy v3 resources
// one proxy needs. It is pure: the same snapshot and proxy always give the same
// resources, nothing is read from anywhere else, and nothing is cached here.
//
//	*snapshot.Snapshot + Proxy
//	  1 find the proxy's workload and the Sidecar that selects it
//	  2 services visible to it (Sidecar egress hosts, exportTo)
//	  3 clusters: outbound|PORT|SUBSET|HOST per service port and DestinationRule subset; inbound|PORT||
//	  4 endpoints: one ClusterLoadAssignment per EDS cluster, by locality
//	  5 routes: VirtualServices merged per port (outbound), inbound, http_proxy, gateway http.PORT
//	  6 listeners: inbound (workload address), egress binds, http_proxy, gateway servers
//	  ──▶ *Resources (every message passes Validate())
//
// The Envoy subset emitted is described in docs/xds.md.
package translator
