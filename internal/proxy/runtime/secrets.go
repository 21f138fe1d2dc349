package runtime

import (
	"crypto/tls"
	"crypto/x509"
)

// Secrets resolves SDS secret names (docs/xds.md, "Secrets") to key material.
// It is called at handshake time, so a rotated certificate takes effect on the
// next handshake without a config change. Implementations must be safe for
// concurrent use and must not block on the network: they answer from what
// they hold, or fail.
//
// Names, as Istio's agent serves them:
//   - "default": this workload's certificate and key (its SPIFFE SVID)
//   - "ROOTCA": the mesh trust bundle (may hold several roots during rotation)
//   - "file-cert:CERT_PATH~KEY_PATH": a certificate and key read from files
//   - "file-root:CA_PATH": roots read from a file
type Secrets interface {
	Certificate(name string) (*tls.Certificate, error)
	Roots(name string) (*x509.CertPool, error)
}
