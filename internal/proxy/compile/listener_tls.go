package compile

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

const (
	downstreamTLSType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	rawBufferType     = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// parseChainMatch converts a filter_chain_match (nil matches everything).
func parseChainMatch(path string, m *listenerv3.FilterChainMatch) (runtime.FilterChainMatch, error) {
	var out runtime.FilterChainMatch
	if m == nil {
		return out, nil
	}
	switch {
	case len(m.GetDirectSourcePrefixRanges()) > 0:
		return out, fmt.Errorf("%s.direct_source_prefix_ranges: unsupported", path)
	case m.GetSourceType() != listenerv3.FilterChainMatch_ANY:
		return out, fmt.Errorf("%s.source_type: unsupported %v", path, m.GetSourceType())
	case len(m.GetSourcePorts()) > 0:
		return out, fmt.Errorf("%s.source_ports: unsupported", path)
	}
	if p := m.GetDestinationPort(); p != nil {
		if p.GetValue() == 0 || p.GetValue() > 65535 {
			return out, fmt.Errorf("%s.destination_port: %d out of range", path, p.GetValue())
		}
		out.DestinationPort = uint16(p.GetValue())
	}
	var err error
	if out.PrefixRanges, err = parseCIDRs(path+".prefix_ranges", m.GetPrefixRanges()); err != nil {
		return out, err
	}
	if out.SourcePrefixRanges, err = parseCIDRs(path+".source_prefix_ranges", m.GetSourcePrefixRanges()); err != nil {
		return out, err
	}
	for i, n := range m.GetServerNames() {
		n = strings.ToLower(n)
		if n == "" || strings.Contains(n[1:], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) {
			return out, fmt.Errorf("%s.server_names[%d]: invalid server name %q", path, i, n)
		}
		out.ServerNames = append(out.ServerNames, n)
	}
	switch tp := m.GetTransportProtocol(); tp {
	case "", runtime.TransportTLS, runtime.TransportRaw:
		out.TransportProtocol = tp
	default:
		return out, fmt.Errorf("%s.transport_protocol: unsupported %q", path, tp)
	}
	out.ApplicationProtocols = slices.Clone(m.GetApplicationProtocols())
	return out, nil
}

func parseCIDRs(path string, rs []*corev3.CidrRange) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, r := range rs {
		ip, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			return nil, fmt.Errorf("%s[%d].address_prefix: %q is not an IP address", path, i, r.GetAddressPrefix())
		}
		ip = ip.Unmap()
		bits := ip.BitLen()
		if l := r.GetPrefixLen(); l != nil {
			bits = int(l.GetValue())
		}
		p, err := ip.Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].prefix_len: %w", path, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// matchKey is a canonical form of m: two chains with equal keys could
// never be told apart.
func matchKey(m runtime.FilterChainMatch) string {
	sorted := func(ss []string) string { return strings.Join(slices.Sorted(slices.Values(ss)), ",") }
	prefixes := func(ps []netip.Prefix) string {
		ss := make([]string, len(ps))
		for i, p := range ps {
			ss[i] = p.String()
		}
		return sorted(ss)
	}
	return fmt.Sprintf("%d|%s|%s|%s|%s|%s", m.DestinationPort, prefixes(m.PrefixRanges), sorted(m.ServerNames),
		m.TransportProtocol, sorted(m.ApplicationProtocols), prefixes(m.SourcePrefixRanges))
}

// parseTransportSocket converts a filter chain's transport socket: TLS
// (DownstreamTlsContext) or raw_buffer (nil).
func parseTransportSocket(path string, ts *corev3.TransportSocket) (*runtime.DownstreamTLS, error) {
	switch ts.GetTypedConfig().GetTypeUrl() {
	case rawBufferType:
		return nil, nil
	case downstreamTLSType:
	default:
		return nil, fmt.Errorf("%s: unsupported transport socket %q", path, ts.GetName())
	}
	var dt tlsv3.DownstreamTlsContext
	if err := unmarshalTyped(ts.GetTypedConfig(), downstreamTLSType, &dt); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	return parseDownstreamTLS(path+".typed_config", &dt)
}

func parseDownstreamTLS(path string, dt *tlsv3.DownstreamTlsContext) (*runtime.DownstreamTLS, error) {
	switch {
	case dt.GetRequireSni().GetValue():
		return nil, fmt.Errorf("%s.require_sni: unsupported", path)
	case dt.GetOcspStaplePolicy() == tlsv3.DownstreamTlsContext_STRICT_STAPLING ||
		dt.GetOcspStaplePolicy() == tlsv3.DownstreamTlsContext_MUST_STAPLE:
		return nil, fmt.Errorf("%s.ocsp_staple_policy: unsupported", path)
	}
	cpath := path + ".common_tls_context"
	c, err := parseCommonTLS(cpath, dt.GetCommonTlsContext())
	if err != nil {
		return nil, err
	}
	if len(c.certs) == 0 {
		return nil, fmt.Errorf("%s: no tls_certificates or tls_certificate_sds_secret_configs", cpath)
	}
	out := &c.verify
	out.RequireClientCert = dt.GetRequireClientCertificate().GetValue()
	out.CertSecrets, out.ALPN, out.MinVersion, out.MaxVersion = c.certs, c.alpn, c.minVersion, c.maxVersion
	if out.RequireClientCert && out.RootSecret == "" {
		return nil, fmt.Errorf("%s: require_client_certificate needs a validation context with trusted roots", path)
	}
	return out, nil
}

// commonTLS is what a CommonTlsContext says, the same for a server and a
// client: the certificates presented, how the peer is verified, ALPN and
// the protocol versions.
type commonTLS struct {
	certs []string // SDS names and "file-cert:CERT~KEY" pairs, in order
	// verify holds RootSecret, SubjectAltNames, CertHashes and SPKIHashes.
	verify                 runtime.DownstreamTLS
	alpn                   []string
	minVersion, maxVersion uint16
}

func parseCommonTLS(cpath string, ctx *tlsv3.CommonTlsContext) (commonTLS, error) {
	var c commonTLS
	switch {
	case ctx.GetTlsCertificateProviderInstance() != nil || ctx.GetTlsCertificateCertificateProviderInstance() != nil:
		return c, fmt.Errorf("%s.tls_certificate_provider_instance: unsupported", cpath)
	case ctx.GetCustomHandshaker() != nil:
		return c, fmt.Errorf("%s.custom_handshaker: unsupported", cpath)
	case ctx.GetValidationContextCertificateProviderInstance() != nil: // a validation_context_type of its own
		return c, fmt.Errorf("%s.validation_context_certificate_provider_instance: unsupported", cpath)
	}
	if p := ctx.GetTlsParams(); p != nil {
		var err error
		if c.minVersion, err = tlsVersion(cpath+".tls_params.tls_minimum_protocol_version", p.GetTlsMinimumProtocolVersion()); err != nil {
			return c, err
		}
		if c.maxVersion, err = tlsVersion(cpath+".tls_params.tls_maximum_protocol_version", p.GetTlsMaximumProtocolVersion()); err != nil {
			return c, err
		}
		// cipher_suites and ecdh_curves narrow what Go's secure defaults
		// offer; they are accepted and Go's defaults are kept.
	}
	for i, tc := range ctx.GetTlsCertificates() {
		cert, key := tc.GetCertificateChain().GetFilename(), tc.GetPrivateKey().GetFilename()
		if cert == "" || key == "" {
			return c, fmt.Errorf("%s.tls_certificates[%d]: only filename data sources are supported", cpath, i)
		}
		c.certs = append(c.certs, "file-cert:"+cert+"~"+key)
	}
	for i, sc := range ctx.GetTlsCertificateSdsSecretConfigs() {
		if err := nonEmpty(fmt.Sprintf("%s.tls_certificate_sds_secret_configs[%d].name", cpath, i), sc.GetName()); err != nil {
			return c, err
		}
		c.certs = append(c.certs, sc.GetName())
	}
	vc, err := validationContext(cpath, ctx, &c.verify)
	if err != nil {
		return c, err
	}
	if vc != nil {
		if err := parseValidationContext(cpath+".validation_context", vc, &c.verify); err != nil {
			return c, err
		}
	}
	c.alpn = slices.Clone(ctx.GetAlpnProtocols())
	return c, nil
}

// validationContext returns ctx's inline validation context, if any, and
// sets out.RootSecret from its SDS secret config. A combined context needs
// both parts; an SDS secret needs a name.
func validationContext(cpath string, ctx *tlsv3.CommonTlsContext, out *runtime.DownstreamTLS) (*tlsv3.CertificateValidationContext, error) {
	sds := func(path string, c *tlsv3.SdsSecretConfig) error {
		if c == nil {
			return fmt.Errorf("%s: required", path)
		}
		out.RootSecret = c.GetName()
		return nonEmpty(path+".name", c.GetName())
	}
	switch v := ctx.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContext:
		return v.ValidationContext, nil
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		return nil, sds(cpath+".validation_context_sds_secret_config", v.ValidationContextSdsSecretConfig)
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		cv := v.CombinedValidationContext
		path := cpath + ".combined_validation_context"
		if cv.GetDefaultValidationContext() == nil {
			return nil, fmt.Errorf("%s.default_validation_context: required", path)
		}
		return cv.GetDefaultValidationContext(), sds(path+".validation_context_sds_secret_config", cv.GetValidationContextSdsSecretConfig())
	}
	return nil, nil
}

func parseValidationContext(path string, vc *tlsv3.CertificateValidationContext, out *runtime.DownstreamTLS) error {
	switch {
	case vc.GetCrl() != nil:
		return fmt.Errorf("%s.crl: unsupported", path)
	case vc.GetCustomValidatorConfig() != nil:
		return fmt.Errorf("%s.custom_validator_config: unsupported", path)
	case vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED:
		return fmt.Errorf("%s.trust_chain_verification: ACCEPT_UNTRUSTED is unsupported", path)
	}
	for i, h := range vc.GetVerifyCertificateHash() {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%s.verify_certificate_hash[%d]: %q is not a hex SHA-256", path, i, h)
		}
		out.CertHashes = append(out.CertHashes, b)
	}
	for i, h := range vc.GetVerifyCertificateSpki() {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%s.verify_certificate_spki[%d]: %q is not a base64 SHA-256", path, i, h)
		}
		out.SPKIHashes = append(out.SPKIHashes, b)
	}
	if ca := vc.GetTrustedCa(); ca != nil {
		if ca.GetFilename() == "" {
			return fmt.Errorf("%s.trusted_ca: only a filename data source is supported", path)
		}
		if out.RootSecret == "" {
			out.RootSecret = "file-root:" + ca.GetFilename()
		}
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		if m.GetMatcher() == nil {
			return fmt.Errorf("%s.match_typed_subject_alt_names[%d].matcher: required", path, i)
		}
		sm, err := parseStringMatch(fmt.Sprintf("%s.match_typed_subject_alt_names[%d].matcher", path, i), m.GetMatcher())
		if err != nil {
			return err
		}
		var t runtime.SANType
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS:
			t = runtime.SANDNS
		case tlsv3.SubjectAltNameMatcher_URI:
			t = runtime.SANURI
		case tlsv3.SubjectAltNameMatcher_EMAIL:
			t = runtime.SANEmail
		case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
			t = runtime.SANIP
		default:
			return fmt.Errorf("%s.match_typed_subject_alt_names[%d].san_type: unsupported %v", path, i, m.GetSanType())
		}
		out.SubjectAltNames = append(out.SubjectAltNames, runtime.SANMatch{Type: t, Match: sm})
	}
	for i, m := range vc.GetMatchSubjectAltNames() {
		sm, err := parseStringMatch(fmt.Sprintf("%s.match_subject_alt_names[%d]", path, i), m)
		if err != nil {
			return err
		}
		out.SubjectAltNames = append(out.SubjectAltNames, runtime.SANMatch{Type: runtime.SANAny, Match: sm})
	}
	return nil
}

func tlsVersion(path string, v tlsv3.TlsParameters_TlsProtocol) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return 0, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	// TLS 1.0 and 1.1 are refused: the floor is TLS 1.2.
	return 0, fmt.Errorf("%s: unsupported %v, want TLSv1_2 or TLSv1_3", path, v)
}
