// Package e2e runs Trellis end to end: real trellisd and trellis-proxy
// processes on loopback addresses, with the applications they front running
// in-process in the test binary. Nothing here is imported by Trellis itself;
// the package holds only tests.
//
// Each test builds its own small mesh in a /24 of 127.0.0.0/8 chosen at random
// per test run (see docs/local-mesh.md for the address plan it follows):
//
//	test client ──1──▶ client sidecar ──2──▶ echo-v1 sidecar ──3──▶ echo-v1 apps
//	  (this process)    127.A.B.10         │  127.A.B.11          127.A.B.21:*
//	                    egress BIND:PORT   └▶ echo-v2 sidecar ──▶ echo-v2 apps
//	                    or :15080 proxy       127.A.B.12          127.A.B.22:*
//	                          ▲
//	                          0 xDS (ADS) from trellisd 127.A.B.1:15010, which
//	                            watches a temporary config directory
//
// The steps:
//
//  0. TestMain builds cmd/trellisd and cmd/trellis-proxy once; a test writes
//     Istio YAML into a temporary directory and starts trellisd on it and one
//     proxy per WorkloadEntry, then waits on their readiness endpoints.
//  1. The test plays the client application: it dials the client sidecar's
//     egress listener (with the service's Host) or uses its HTTP-proxy listener.
//  2. The client sidecar routes to an endpoint of the service: the inbound
//     listener of a server sidecar.
//  3. The server sidecar forwards to its Sidecar ingress defaultEndpoint, an
//     HTTP, h2c, gRPC, WebSocket or TCP echo server in this process.
//
// Every process is killed when its test ends (and by Pdeathsig should the test
// binary die); its output is attached to the test log when the test fails.
// Run with -short to skip, or -e2e.bin DIR to use binaries built elsewhere.
package e2e
