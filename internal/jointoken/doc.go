// Package jointoken is how a local-mode proxy proves which workload it is
// before it has a certificate (issue 4, point 2). trellisd keeps a secret and
// writes, for every WorkloadEntry it knows, a token only that workload's
// proxy (and its user) can read:
//
//	DATA_DIR/join-secret          32 random bytes, 0600, created on first start
//	DATA_DIR/tokens/NS/NAME       HMAC-SHA256(secret, "NS/NAME"), hex, 0600
//
// The proxy sends the token with its workload name; trellisd recomputes the
// HMAC and compares in constant time. A token proves the workload name only:
// which identity that name may have (its serviceAccount) is the CSR server's
// decision, made from the registry.
//
// Kubernetes mode replaces this with service-account tokens checked by
// TokenReview, behind the same authenticator seam (internal/certserver).
package jointoken
