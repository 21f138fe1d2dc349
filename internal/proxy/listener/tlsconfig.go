package listener

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// errNoSecrets is the handshake error of a TLS chain on a manager built
// without Secrets.
var errNoSecrets = errors.New("listener: tls: no secrets provider")

// serverTLS returns the crypto/tls server config of a DownstreamTLS. Key
// material is resolved through secrets on every handshake, so rotated
// certificates and roots apply to the next connection.
func serverTLS(d *runtime.DownstreamTLS, secrets runtime.Secrets) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return handshakeConfig(d, secrets, hello.SupportedProtos)
		},
	}
}

func handshakeConfig(d *runtime.DownstreamTLS, secrets runtime.Secrets, offered []string) (*tls.Config, error) {
	if secrets == nil {
		return nil, errNoSecrets
	}
	cfg := &tls.Config{
		MinVersion: cmpOr(d.MinVersion, tls.VersionTLS12),
		MaxVersion: d.MaxVersion,
		// Envoy selects no protocol when the client offers none of ours
		// and goes on; crypto/tls would fail the handshake, so only the
		// protocol Envoy would pick is offered.
		NextProtos: selectALPN(d.ALPN, offered),
	}
	for _, name := range d.CertSecrets {
		c, err := secrets.Certificate(name)
		if err != nil {
			return nil, fmt.Errorf("listener: tls: secret %q: %w", name, err)
		}
		cfg.Certificates = append(cfg.Certificates, *c)
	}
	if d.RootSecret == "" {
		return cfg, nil
	}
	roots, err := secrets.Roots(d.RootSecret)
	if err != nil {
		return nil, fmt.Errorf("listener: tls: secret %q: %w", d.RootSecret, err)
	}
	cfg.ClientCAs = roots
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if d.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if len(d.SubjectAltNames) > 0 || len(d.CertHashes) > 0 || len(d.SPKIHashes) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // no certificate: RequireClientCert decides
			}
			return verifyPeer(d, cs.PeerCertificates[0])
		}
	}
	return cfg, nil
}

func cmpOr(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

// selectALPN returns the server's preferred protocol among those offered,
// as a one-element list, or nil.
func selectALPN(ours, offered []string) []string {
	for _, p := range ours {
		if slices.Contains(offered, p) {
			return []string{p}
		}
	}
	return nil
}

// matchSAN reports whether one of c's SANs matches one of ms.
func matchSAN(c *x509.Certificate, ms []runtime.SANMatch) bool {
	for _, m := range ms {
		var vals []string
		if m.Type == runtime.SANAny || m.Type == runtime.SANDNS {
			vals = append(vals, c.DNSNames...)
		}
		if m.Type == runtime.SANAny || m.Type == runtime.SANURI {
			for _, u := range c.URIs {
				vals = append(vals, u.String())
			}
		}
		if m.Type == runtime.SANAny || m.Type == runtime.SANEmail {
			vals = append(vals, c.EmailAddresses...)
		}
		if m.Type == runtime.SANAny || m.Type == runtime.SANIP {
			for _, ip := range c.IPAddresses {
				vals = append(vals, ip.String())
			}
		}
		for _, v := range vals {
			if matchString(m.Match, v) {
				return true
			}
		}
	}
	return false
}

// matchString applies a runtime.StringMatch to v.
func matchString(m runtime.StringMatch, v string) bool {
	want := m.Value
	if m.IgnoreCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch m.Kind {
	case runtime.MatchExact:
		return v == want
	case runtime.MatchPrefix:
		return strings.HasPrefix(v, want)
	case runtime.MatchSuffix:
		return strings.HasSuffix(v, want)
	case runtime.MatchRegex:
		return m.Regex != nil && m.Regex.MatchString(v)
	case runtime.MatchPresent:
		return true
	}
	return false
}

// verifyPeer applies the SAN and pinning checks of d to a verified leaf.
func verifyPeer(d *runtime.DownstreamTLS, c *x509.Certificate) error {
	if len(d.SubjectAltNames) > 0 && !matchSAN(c, d.SubjectAltNames) {
		return errors.New("listener: tls: client certificate SAN not allowed")
	}
	if len(d.CertHashes) == 0 && len(d.SPKIHashes) == 0 {
		return nil
	}
	certSum, spkiSum := sha256.Sum256(c.Raw), sha256.Sum256(c.RawSubjectPublicKeyInfo)
	for _, h := range d.CertHashes {
		if bytes.Equal(h, certSum[:]) {
			return nil
		}
	}
	for _, h := range d.SPKIHashes {
		if bytes.Equal(h, spkiSum[:]) {
			return nil
		}
	}
	return errors.New("listener: tls: client certificate hash not allowed")
}
