package runtime

// DownstreamTLS is a filter chain's DownstreamTlsContext: the server side of
// TLS. Key material is named, not held: it is resolved through Secrets at
// handshake time, so rotation needs no config change.
type DownstreamTLS struct {
	// CertSecrets name the certificate/key pairs (SDS names, see Secrets);
	// with several, the one matching the client's SNI is served.
	CertSecrets []string
	// RootSecret names the roots client certificates are verified against;
	// "" does not verify client certificates (and so requests none).
	RootSecret string
	// RequireClientCert refuses clients without a certificate
	// (require_client_certificate). With RootSecret set and this false, a
	// certificate is asked for and verified when sent.
	RequireClientCert bool
	// SubjectAltNames restrict accepted client certificates to those with a
	// SAN matching one entry (match_typed_subject_alt_names /
	// match_subject_alt_names); empty accepts any verified certificate.
	SubjectAltNames []SANMatch
	// CertHashes and SPKIHashes pin client certificates: when either is
	// set, the SHA-256 of the leaf certificate (DER) or of its
	// SubjectPublicKeyInfo must equal one entry (verify_certificate_hash,
	// verify_certificate_spki).
	CertHashes, SPKIHashes [][]byte
	// ALPN are the protocols offered, in preference order (alpn_protocols);
	// when the client offers none of them no protocol is selected and the
	// handshake goes on, as in Envoy.
	ALPN []string
	// MinVersion and MaxVersion are crypto/tls version numbers; 0 means
	// TLS 1.2 and TLS 1.3 respectively (Envoy's server defaults).
	MinVersion, MaxVersion uint16
}

// SANType selects which subject alternative names a SANMatch compares.
type SANType uint8

const (
	SANAny   SANType = iota // match_subject_alt_names: DNS, URI, email or IP
	SANDNS                  // DNS names
	SANURI                  // URIs (SPIFFE IDs)
	SANEmail                // email addresses
	SANIP                   // IP addresses, in their string form
)

// SANMatch compares a certificate's subject alternative names.
type SANMatch struct {
	Type  SANType
	Match StringMatch
}
