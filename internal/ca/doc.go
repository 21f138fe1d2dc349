// Package ca is trellisd's certificate authority (Citadel's role in Istio):
// it holds the mesh's signing key and trust bundle and signs X.509 SVIDs for
// workloads from certificate signing requests.
//
//	DATA_DIR/cacerts/{ca-cert,ca-key,root-cert,cert-chain}.pem   (plugged in, Istio's layout)
//	   │ or, when absent,
//	DATA_DIR/ca/{root-cert,root-key}.pem   (1 created on first start: ECDSA P-256, 10 years, key 0600)
//	   │
//	   ▼ 2 Load: signing cert + key, chain up to the root, trust bundle
//	 *CA ──3 writes DATA_DIR/root-cert.pem (0644): every trusted root,
//	   │     plus DATA_DIR/trust-bundle.pem and Options.ExtraRoots (root rotation)
//	   ▼
//	 Sign(csr, spiffe://TD/ns/NS/sa/SA, ttl)
//	   4 checks the CSR's signature and that it asks for that identity only
//	   5 issues a leaf (URI SAN only, server+client auth, ttl ≤ WorkloadTTL)
//	   6 returns leaf, intermediates, root: Istio's cert_chain order
//
// The CA never decides who may have which identity: the caller (the CSR
// server, internal/certserver) authenticates the requester and passes the
// identity it proved. Private keys of workloads never reach the CA: a CSR
// carries only the public key.
package ca
