// Package httpproxy is the proxy's http_connection_manager: an http.Handler
// that routes each request over the current config and forwards it upstream.
//
//	           ┌──────────── Handler (one per HTTP listener) ─────────────┐
//	request ──▶│1 load state (atomic) 2 pick virtual host by Host/:authority│
//	           │3 first matching route: none → 404 NR                      │
//	           │4 direct response / redirect → answer locally              │
//	           │5 pick weighted cluster, apply route timeout               │
//	           │6 forward (forward.go): upstream request with hop-by-hop   │
//	           │  headers stripped, path/host rewritten, request header    │
//	           │  mutations, x-request-id, x-forwarded-proto               │
//	           │7 upstream transport: lb pick (none → 503 UH), dial        │
//	           │  (fail → 503 UF), retries per RetryPolicy, per-try timeout│
//	           │8 response header mutations, stream body (flush only when  │
//	           │  the next upstream read would wait), trailers, 1xx, 101   │
//	           │9 record RequestInfo (status, flags) → metrics, OnDone     │
//	           └───────────────────────────────────────────────────────────┘
//
// The request path allocates little: the exchange (one per request) holds
// the upstream request, its URL, its context (which answers the exchange
// and the 1xx trace without context.WithValue layers); the filter context
// and the authorization request it builds are one allocation, made only
// when the listener has filters; the upstream header map is the one copy
// made of the downstream headers, sharing their values; body copy buffers
// are pooled;
// metric series are resolved once per cluster and status code
// (metrics.go). BenchmarkProxiedRequest reports allocs/op.
//
// A Config is compiled once per runtime.Config (NewConfig): virtual host
// indexes, canonical header names, pickers and transports are resolved there,
// so the request path does one atomic load and no locking. Upstream
// connection pools live in Pools, which outlive configs, so keep-alive and
// HTTP/2 connections survive config changes.
//
// Upstream behaviour (upstream_pools.go, transport.go, mirror.go,
// upstream_exchange.go) keeps per-cluster state in Pools (package upstream):
// circuit breakers answer 503 UO on overflow, outlier detection ejects hosts
// after consecutive failures, route hash_policy feeds ring hash and maglev,
// request_mirror_policies send bounded fire-and-forget copies, retries back
// off with full jitter and may avoid previous hosts and priorities, and
// transport_socket_matches pick upstream TLS per endpoint (auto mTLS).
//
// Response flags follow Envoy: NR (no route), UH (no healthy upstream), UF
// (connect failure), UO (circuit breaker overflow), UT (timeout), URX (retries exhausted), UC (upstream
// reset before headers), NC (no such cluster), DC (downstream went away).
// Requests whose content type is application/grpc get local replies in gRPC
// form (HTTP 200, grpc-status), as Envoy sends them.
package httpproxy
