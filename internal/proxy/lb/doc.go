// Package lb chooses an upstream endpoint for each request or connection.
//
// A Picker is built once per cluster per config (as grpc-go's balancer
// pickers are) from the cluster's endpoints; building cannot fail. Pick never
// blocks, takes no locks and is safe for concurrent use:
//
//	*runtime.Cluster ──1 New──▶ Picker (healthy endpoints of the best priority,
//	                                    weights reduced, schedule precomputed)
//	request ──2 Pick──▶ Result{Endpoint, Addr} ──3 Done when the request ends
//
// Policies follow Envoy's lb_policy:
//
//   - RoundRobin: weighted round robin over a precomputed schedule (one
//     period of nginx's smooth WRR; earliest-deadline-first for very large
//     clusters), walked by one atomic counter from a random start so that
//     proxies do not move in lock-step.
//   - LeastRequest: power of two choices on in-flight requests, weighted as
//     Envoy does ((active+1)/weight, lower wins).
//   - Random: weighted random.
//
// Only endpoints marked healthy are picked, and only those of the lowest
// priority that has any (Envoy's priority levels without overprovisioning
// spill-over). A cluster with no healthy endpoint yields no pick.
package lb
