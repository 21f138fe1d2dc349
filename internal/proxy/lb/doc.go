// Package lb chooses an upstream endpoint for each request or connection.
//
// A Picker is built once per cluster per state change (as grpc-go's balancer
// pickers are: a new config, an outlier ejection or return) from the
// cluster's endpoints; building cannot fail. Pick and Choose never block,
// take no locks and are safe for concurrent use:
//
//	*runtime.Cluster + Options{Ejected, Added}
//	   │ 1 NewWith: group endpoints by priority; per level health =
//	   │   min(100%, 1.4 × healthy share); loads spill to the next level;
//	   │   a level below the panic threshold uses all its hosts
//	   ▼
//	Picker ── levels[] ── (locality_weighted: localities by weight × health)
//	   │                         └── host picker: RR / LR / random / ring / maglev
//	request ──2 Choose(Choice{Hash, SkipPriorities, Dest})──▶ Result
//	   ──3 Result.Done when the request ends (least-request bookkeeping)
//
// Policies follow Envoy's lb_policy:
//
//   - RoundRobin: weighted round robin over a precomputed schedule (one
//     period of nginx's smooth WRR; earliest-deadline-first for very large
//     clusters), walked by one atomic counter from a random start so that
//     proxies do not move in lock-step.
//   - LeastRequest: ChoiceCount (default 2) random choices on in-flight
//     requests, weighted as Envoy does ((active+1)/weight, lower wins).
//   - Random: weighted random.
//   - RingHash: xxHash points on a ring sized between the configured bounds,
//     points per host proportional to weight; the request's hash (route
//     hash_policy) picks the next point. Removing a host moves only its keys.
//   - Maglev: a prime-sized (65537) lookup table filled by per-host
//     permutations, weighted as Envoy does.
//   - OriginalDst: the request's own destination (Choice.Dest).
//
// Slow start (warmup): while a host added less than the window ago ramps up,
// its level picks by weighted random with weight × max(min%, (age/window)^(1/aggression)).
//
// Endpoints EDS marks unhealthy are never picked, even in panic (see NewWith).
// Outlier-ejected endpoints (Options.Ejected) count as unhealthy and come
// back in panic, as in Envoy.
package lb
