// Package identity is trellis-proxy's built-in agent (pilot-agent's SDS
// server in Istio): it gets the workload's certificate from trellisd's CA,
// keeps it fresh, and answers runtime.Secrets lookups at handshake time.
//
//	1 Run: generate an ECDSA P-256 key in memory (it never leaves the process)
//	2      CSR ──TLS──▶ trellisd :15012 CreateCertificate
//	         (authorization: Bearer JOIN_TOKEN, x-trellis-workload: NS/NAME;
//	          trellisd verified by the root file, name istiod.istio-system.svc)
//	3      store cert + chain (atomic swap) and the trust bundle
//	         (root file ∪ the root that came with the chain)
//	4      sleep until ~half the lifetime (jittered), then back to 1;
//	       on failure keep the current cert and retry with backoff
//
//	listeners ──Certificate("default") / Roots("ROOTCA")──▶ Agent (lock-free reads)
//	          ──"file-cert:C~K" / "file-root:CA"──▶ files, cached by mtime
//	xdsclient ──XDSTLSConfig()──▶ mTLS to trellisd with the current SVID
//
// The agent never blocks a handshake on the network: lookups answer from
// what it holds.
package identity
