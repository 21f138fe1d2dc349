// Package haproxy renders the HAProxy configuration of one reference hop
// (hop.cfg.tmpl): the benchmark runs two such processes in the same two-hop
// topology as two Trellis sidecars, HTTP/1.1 with upstream keep-alive, gRPC
// as HTTP/2 prior knowledge, and plain TCP.
package haproxy
