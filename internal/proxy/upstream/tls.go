package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

var errNoSecrets = errors.New("upstream: tls: no secrets provider")

// SocketFor returns the TLS settings for connections to ep: the first of
// c.TLSMatches whose Match pairs all appear in ep.SocketMatch, else c.TLS.
// nil means plain text.
func SocketFor(c *runtime.Cluster, ep *runtime.Endpoint) *runtime.UpstreamTLS {
	for i := range c.TLSMatches {
		m := &c.TLSMatches[i]
		ok := true
		for k, v := range m.Match {
			if ep == nil || ep.SocketMatch[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return m.TLS
		}
	}
	return c.TLS
}

// Key is a canonical string for t, equal for settings that can share
// connections. It is built with strconv appends into one buffer (fmt cost
// ~280 B and several allocations per cluster and config; issue 5).
func Key(t *runtime.UpstreamTLS) string {
	if t == nil {
		return ""
	}
	n := 48 + len(t.SNI) + len(t.CertSecret) + len(t.RootSecret)
	for _, p := range t.ALPN {
		n += len(p) + 3
	}
	for _, s := range t.SubjectAltNames {
		n += len(s.Match.Value) + 24
	}
	b := make([]byte, 0, n)
	b = strconv.AppendQuote(append(b, "sni="...), t.SNI)
	b = append(b, " alpn=["...)
	for i, p := range t.ALPN {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendQuote(b, p)
	}
	b = strconv.AppendQuote(append(b, "] cert="...), t.CertSecret)
	b = strconv.AppendQuote(append(b, " root="...), t.RootSecret)
	b = strconv.AppendUint(append(b, " v="...), uint64(t.MinVersion), 10)
	b = strconv.AppendUint(append(b, '-'), uint64(t.MaxVersion), 10)
	for _, s := range t.SubjectAltNames {
		b = strconv.AppendInt(append(b, " san="...), int64(s.Type), 10)
		b = strconv.AppendInt(append(b, '/'), int64(s.Match.Kind), 10)
		b = strconv.AppendQuote(append(b, '/'), s.Match.Value)
		b = strconv.AppendBool(append(b, '/'), s.Match.IgnoreCase)
	}
	return string(b)
}

// ClientTLS returns the client configuration for t. Key material is looked
// up in secrets at every handshake, so rotated certificates and roots take
// effect without a config change. The server's chain is verified against
// t.RootSecret and its SANs against t.SubjectAltNames, as Envoy does: the
// host name is not checked unless a SAN matcher says so.
func ClientTLS(t *runtime.UpstreamTLS, secrets runtime.Secrets) *tls.Config {
	cfg := &tls.Config{
		ServerName: t.SNI,
		NextProtos: append([]string(nil), t.ALPN...),
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS13,
		// Verification is VerifyConnection's: Go's would insist on the
		// host name.
		InsecureSkipVerify: true,
	}
	if t.MinVersion != 0 {
		cfg.MinVersion = t.MinVersion
	}
	if t.MaxVersion != 0 {
		cfg.MaxVersion = t.MaxVersion
	}
	if name := t.CertSecret; name != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if secrets == nil {
				return nil, errNoSecrets
			}
			c, err := secrets.Certificate(name)
			if err != nil {
				return nil, fmt.Errorf("upstream: tls: certificate %q: %w", name, err)
			}
			return c, nil
		}
	}
	if t.RootSecret != "" {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyServer(t, secrets, cs)
		}
	}
	return cfg
}

func verifyServer(t *runtime.UpstreamTLS, secrets runtime.Secrets, cs tls.ConnectionState) error {
	if secrets == nil {
		return errNoSecrets
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream: tls: server sent no certificate")
	}
	roots, err := secrets.Roots(t.RootSecret)
	if err != nil {
		return fmt.Errorf("upstream: tls: roots %q: %w", t.RootSecret, err)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("upstream: tls: verify server certificate: %w", err)
	}
	if len(t.SubjectAltNames) == 0 {
		return nil
	}
	for _, m := range t.SubjectAltNames {
		if sanMatches(leaf, m) {
			return nil
		}
	}
	return fmt.Errorf("upstream: tls: server certificate SANs %v match none of the expected", sans(leaf))
}

func sans(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func sanMatches(c *x509.Certificate, m runtime.SANMatch) bool {
	var vals []string
	switch m.Type {
	case runtime.SANDNS:
		vals = c.DNSNames
	case runtime.SANURI:
		for _, u := range c.URIs {
			vals = append(vals, u.String())
		}
	case runtime.SANEmail:
		vals = c.EmailAddresses
	case runtime.SANIP:
		for _, ip := range c.IPAddresses {
			vals = append(vals, ip.String())
		}
	default:
		vals = sans(c)
	}
	for _, v := range vals {
		if stringMatches(m.Match, v) {
			return true
		}
	}
	return false
}

// stringMatches applies an Envoy StringMatcher.
func stringMatches(m runtime.StringMatch, v string) bool {
	eq := func(a, b string) bool {
		if m.IgnoreCase {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch m.Kind {
	case runtime.MatchExact:
		return eq(v, m.Value)
	case runtime.MatchPrefix:
		return len(v) >= len(m.Value) && eq(v[:len(m.Value)], m.Value)
	case runtime.MatchSuffix:
		return len(v) >= len(m.Value) && eq(v[len(v)-len(m.Value):], m.Value)
	case runtime.MatchRegex:
		re := m.Regex
		if re == nil {
			var err error
			if re, err = regexp.Compile(`^(?:` + m.Value + `)$`); err != nil {
				return false
			}
		}
		return re.MatchString(v)
	case runtime.MatchPresent:
		return true
	}
	return false
}
