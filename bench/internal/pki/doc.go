// Package pki writes the throw-away trust material the benchmark's reference
// proxies use for TLS between their hops (issue 5: "HAProxy with TLS between
// its hops whenever Trellis runs mTLS"): one ECDSA P-256 root and two leaves
// signed by it, a server certificate for the server-side hop and a client
// certificate for the client-side hop, so the hop is mutual TLS like the
// sidecars'. Trellis's own sidecars take their certificates from trellisd's CA
// instead.
//
// Keys are generated fresh on every run and never leave the run directory.
package pki
