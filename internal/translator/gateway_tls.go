package translator

import (
	"cmp"
	"path/filepath"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
)

// Secret name prefixes for file-backed key material (docs/xds.md "Secrets").
const (
	gwTLSSocket       = "envoy.transport_sockets.tls"
	gwSDSCluster      = "sds-grpc"
	fileCertPrefix    = "file-cert:"
	fileRootPrefix    = "file-root:"
	defaultCredsDir   = "credentials"
	credentialCert    = "tls.crt"
	credentialKey     = "tls.key"
	credentialCACert  = "ca.crt"
	gatewayALPNHTTP2  = "h2"
	gatewayALPNHTTP11 = "http/1.1"
)

// gatewaySecret names one SDS secret served by the proxy's built-in agent.
func gatewaySecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: gwSDSCluster},
				}}},
			}},
		},
	}
}

// credentialFiles maps a Gateway credentialName to its files in local mode:
// CREDENTIALS_DIR/NAME/{tls.crt,tls.key,ca.crt}.
func (b *builder) credentialFiles(name string) (cert, key, ca string) {
	dir := filepath.Join(cmp.Or(b.mesh.CredentialsDir, defaultCredsDir), name)
	return filepath.Join(dir, credentialCert), filepath.Join(dir, credentialKey), filepath.Join(dir, credentialCACert)
}

// serverSecrets returns the SDS names of a server's certificates and of the
// roots that verify clients (empty without MUTUAL): credentialName(s) in
// local mode as file-cert:/file-root: names over the credentials
// directory, else the serverCertificate/privateKey/caCertificates files or
// tlsCertificates entries.
func (b *builder) serverSecrets(tls *networkingv1.ServerTLSSettings) (certs []string, root string) {
	names := tls.GetCredentialNames()
	if tls.GetCredentialName() != "" {
		names = append([]string{tls.GetCredentialName()}, names...)
	}
	for i, n := range names {
		cert, key, ca := b.credentialFiles(n)
		certs = append(certs, fileCertPrefix+cert+"~"+key)
		if i == 0 {
			root = fileRootPrefix + ca
		}
	}
	if tls.GetCaCertCredentialName() != "" {
		_, _, ca := b.credentialFiles(tls.GetCaCertCredentialName())
		root = fileRootPrefix + ca
	}
	if len(names) == 0 {
		if tls.GetServerCertificate() != "" && tls.GetPrivateKey() != "" {
			certs = append(certs, fileCertPrefix+tls.GetServerCertificate()+"~"+tls.GetPrivateKey())
		}
		for _, tc := range tls.GetTlsCertificates() {
			certs = append(certs, fileCertPrefix+tc.GetServerCertificate()+"~"+tc.GetPrivateKey())
			if root == "" && tc.GetCaCertificates() != "" {
				root = fileRootPrefix + tc.GetCaCertificates()
			}
		}
		if tls.GetCaCertificates() != "" {
			root = fileRootPrefix + tls.GetCaCertificates()
		}
	}
	if tls.GetMode() != networkingv1.ServerTLSSettings_MUTUAL && tls.GetMode() != networkingv1.ServerTLSSettings_OPTIONAL_MUTUAL {
		root = ""
	}
	return certs, root
}

// downstreamTLS is the DownstreamTlsContext of a terminating Gateway server
// (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) as Istio builds it: certificates and
// client roots over SDS, subjectAltNames/SPKI/hash pins in a combined
// validation context, protocol versions and ciphers from the server, and
// ALPN h2,http/1.1 for HTTPS.
func (b *builder) downstreamTLS(tls *networkingv1.ServerTLSSettings, http bool) *tlsv3.DownstreamTlsContext {
	certs, root := b.serverSecrets(tls)
	common := &tlsv3.CommonTlsContext{}
	for _, c := range certs {
		common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, gatewaySecret(c))
	}
	if http {
		common.AlpnProtocols = []string{gatewayALPNHTTP2, gatewayALPNHTTP11}
	}
	if root != "" {
		def := &tlsv3.CertificateValidationContext{
			VerifyCertificateSpki: tls.GetVerifyCertificateSpki(),
			VerifyCertificateHash: tls.GetVerifyCertificateHash(),
		}
		for _, san := range tls.GetSubjectAltNames() {
			def.MatchTypedSubjectAltNames = append(def.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
			})
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         def,
				ValidationContextSdsSecretConfig: gatewaySecret(root),
			},
		}
	}
	if minV, maxV := tlsVersion(tls.GetMinProtocolVersion()), tlsVersion(tls.GetMaxProtocolVersion()); minV != 0 || maxV != 0 || len(tls.GetCipherSuites()) > 0 {
		common.TlsParams = &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: minV,
			TlsMaximumProtocolVersion: maxV,
			CipherSuites:              tls.GetCipherSuites(),
		}
	}
	out := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	if tls.GetMode() == networkingv1.ServerTLSSettings_MUTUAL {
		out.RequireClientCertificate = wrapperspb.Bool(true)
	}
	return out
}

func tlsVersion(v networkingv1.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	switch v {
	case networkingv1.ServerTLSSettings_TLSV1_0:
		return tlsv3.TlsParameters_TLSv1_0
	case networkingv1.ServerTLSSettings_TLSV1_1:
		return tlsv3.TlsParameters_TLSv1_1
	case networkingv1.ServerTLSSettings_TLSV1_2:
		return tlsv3.TlsParameters_TLSv1_2
	case networkingv1.ServerTLSSettings_TLSV1_3:
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLS_AUTO
}

// downstreamTransportSocket wraps a DownstreamTlsContext.
func downstreamTransportSocket(ctx *tlsv3.DownstreamTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: gwTLSSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(ctx)}}
}
