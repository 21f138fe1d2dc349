// Package certserver is trellisd's secure listener on 15012: Istio's
// IstioCertificateService (CreateCertificate) for proxies that need a
// certificate, and the mTLS xDS channel for proxies that have one.
//
//	proxy ──TLS──▶ 15012 (Split: one TLS listener, server cert from our CA)
//	               │ 1 handshake; a client certificate is optional but, when
//	               │   given, must chain to the trust bundle and carry an
//	               │   Istio SPIFFE ID of our trust domain
//	               ├─ 2a no client cert ──▶ CSR funnel ──▶ gRPC IstioCertificateService
//	               │        3 Authenticator proves the caller → its SPIFFE ID: local mode,
//	               │          join token + workload name (JoinTokens); Kubernetes mode, the
//	               │          service-account JWT reviewed by the API server for audience
//	               │          istio-ca, user system:serviceaccount:NS:SA (TokenReview)
//	               │        4 ca.Sign(csr, that ID) — a CSR for any other ID is refused, logged
//	               └─ 2b verified SVID ──▶ xDS funnel ──▶ xdsserver (ADS), shared with 15010
//
// A connection that presents no certificate can reach only the CSR service;
// one that presents an SVID reaches only xDS. Proxies therefore renew over a
// connection without a client certificate, authenticated by their token as on
// first start (Istio's agent does the same with its JWT).
package certserver
