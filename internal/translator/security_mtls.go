package translator

import (
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/registry"
)

// Names of Istio's mTLS plumbing (docs/xds.md, "Security").
const (
	nameTLSSocket       = "envoy.transport_sockets.tls"
	nameRawBuffer       = "envoy.transport_sockets.raw_buffer"
	nameTLSInspector    = "envoy.filters.listener.tls_inspector"
	sdsCluster          = "sds-grpc"
	secretDefault       = "default"
	secretRootCA        = "ROOTCA"
	transportSocketMeta = "envoy.transport_socket_match" // endpoint filter_metadata namespace
	tlsModeLabel        = "security.istio.io/tlsMode"    // WorkloadEntry label, Istio's convention
	tlsModeIstio        = "istio"
	tlsMatchIstio       = "tlsMode-istio"
	tlsMatchDisabled    = "tlsMode-disabled"
)

// ALPN values Istio offers in the mesh: a client names the mesh protocols
// first so that a peer sidecar can tell mesh traffic apart, then the
// application protocol; servers answer with the application protocol.
var (
	alpnMeshH2   = []string{"istio-peer-exchange", "istio", "h2"}
	alpnMeshH11  = []string{"istio-peer-exchange", "istio", "http/1.1"}
	alpnMeshTCP  = []string{"istio-peer-exchange", "istio"}
	alpnInHTTP   = []string{"h2", "http/1.1"}
	alpnInTCPMxc = []string{"istio-peer-exchange", "h2", "http/1.1"}
)

// sdsSecret names SDS secret name served by the proxy's own agent over
// the sds-grpc cluster, as Istio's bootstrap wires it.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: sdsCluster}},
				}},
			}},
		},
	}
}

// meshCommonTLS is the CommonTlsContext of every mesh mTLS hop: the SVID
// "default", trust anchors "ROOTCA", optionally the peer's SPIFFE IDs.
func meshCommonTLS(sans []string, alpn []string) *tlsv3.CommonTlsContext {
	var matchers []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		matchers = append(matchers, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(secretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: matchers},
				ValidationContextSdsSecretConfig: sdsSecret(secretRootCA),
			},
		},
		AlpnProtocols: alpn,
	}
}

// istioMutual is the UpstreamTlsContext of Istio's ISTIO_MUTUAL: the SVID,
// the mesh roots, the destination's SPIFFE IDs and Istio's outbound SNI.
func istioMutual(sni string, sans []string, proto registry.Protocol) *corev3.TransportSocket {
	alpn := alpnMeshTCP
	switch {
	case proto.IsHTTP2():
		alpn = alpnMeshH2
	case proto.IsHTTP():
		alpn = alpnMeshH11
	}
	return &corev3.TransportSocket{
		Name: nameTLSSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: meshCommonTLS(sans, alpn),
			Sni:              sni,
		})},
	}
}

func rawBufferSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       nameRawBuffer,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(&rawv3.RawBuffer{})},
	}
}

// outboundSNI is Istio's outbound_.PORT_.SUBSET_.HOST.
func outboundSNI(port uint32, subset, host string) string {
	return "outbound_." + portString(port) + "_." + subset + "_." + host
}

// spiffeID is spiffe://TRUST_DOMAIN/ns/NS/sa/SA.
func spiffeID(trustDomain, ns, sa string) string {
	if sa == "" {
		sa = "default" // Kubernetes' and Istio's default service account
	}
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// serviceSANs are the SPIFFE IDs of svc's endpoints, sorted, as Istio
// verifies a destination's identity (the service accounts of its workloads).
func (b *builder) serviceSANs(svc *registry.Service) []string {
	var out []string
	for _, ep := range b.reg.EndpointsOf(svc) {
		if ep.Namespace == "" && ep.ServiceAccount == "" {
			continue // inline ServiceEntry endpoint without an identity
		}
		out = append(out, spiffeID(b.mesh.TrustDomain, ep.Namespace, ep.ServiceAccount))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// effectiveTLS is the DestinationRule tls that applies to one cluster:
// the subset's policy over the top-level one, port-level over each.
func effectiveTLS(dr *networkingv1.DestinationRule, subset string, port uint32) *networkingv1.ClientTLSSettings {
	pick := func(tp *networkingv1.TrafficPolicy, cur *networkingv1.ClientTLSSettings) *networkingv1.ClientTLSSettings {
		if tp == nil {
			return cur
		}
		if tp.GetTls() != nil {
			cur = tp.GetTls()
		}
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetPort().GetNumber() == port && pl.GetTls() != nil {
				cur = pl.GetTls()
			}
		}
		return cur
	}
	tls := pick(dr.GetTrafficPolicy(), nil)
	for _, ss := range dr.GetSubsets() {
		if subset != "" && ss.GetName() == subset {
			tls = pick(ss.GetTrafficPolicy(), tls)
		}
	}
	return tls
}

// upstreamTLS applies Istio's client-side mTLS to an outbound cluster
// (pilot's applyUpstreamTLSSettings / auto mTLS):
//   - DestinationRule tls ISTIO_MUTUAL: always the mesh mTLS context;
//   - any other DestinationRule tls mode: left to the DestinationRule
//     translation (SIMPLE, MUTUAL, DISABLE);
//   - no tls: auto mTLS, unless the destination's PeerAuthentication
//     (namespace or mesh level) is DISABLE: transport_socket_matches send
//     mTLS to endpoints labelled security.istio.io/tlsMode=istio (they have a
//     sidecar) and plain text to the rest.
//
// External (MESH_EXTERNAL) services never get auto mTLS. Proxyless gRPC
// clients get none of it: grpc-go refuses transport_socket_matches and SDS
// (Istio serves them certificate_provider_instance instead; not yet here).
func (b *builder) upstreamTLS(c *clusterv3.Cluster, svc *registry.Service, port registry.Port, subset string) {
	if b.proxy.Type == Proxyless || c.TransportSocket != nil || len(c.TransportSocketMatches) > 0 {
		return // gRPC, or already decided by the DestinationRule translation
	}
	tls := effectiveTLS(b.destinationRule(svc), subset, port.Number)
	mode := tls.GetMode()
	if tls != nil && mode != networkingv1.ClientTLSSettings_ISTIO_MUTUAL {
		return
	}
	sans := b.serviceSANs(svc)
	if len(tls.GetSubjectAltNames()) > 0 {
		sans = tls.GetSubjectAltNames()
	}
	sni := outboundSNI(port.Number, subset, svc.Hostname)
	if tls.GetSni() != "" {
		sni = tls.GetSni()
	}
	ts := istioMutual(sni, sans, port.Protocol)
	if mode == networkingv1.ClientTLSSettings_ISTIO_MUTUAL {
		c.TransportSocket = ts
		return
	}
	if svc.External || b.serviceMTLSMode(svc) == mtlsDisable {
		return
	}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name: tlsMatchIstio,
			Match: &structpb.Struct{Fields: map[string]*structpb.Value{
				"tlsMode": structpb.NewStringValue(tlsModeIstio),
			}},
			TransportSocket: ts,
		},
		{
			Name:            tlsMatchDisabled,
			Match:           &structpb.Struct{},
			TransportSocket: rawBufferSocket(),
		},
	}
}

// endpointMetadata marks endpoints that have a sidecar (label
// security.istio.io/tlsMode=istio) for transport_socket_matches, as
// Istio's EDS does; nil for the rest.
func endpointMetadata(ep *registry.Endpoint) *corev3.Metadata {
	mode := ep.Labels[tlsModeLabel]
	if mode == "" {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		transportSocketMeta: {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(strings.ToLower(mode))}},
	}}
}

// downstreamMTLS is the server side of a mesh hop: the SVID, a required
// client certificate checked against ROOTCA. Any SPIFFE ID of the mesh's
// trust domain is accepted here; who may call what is AuthorizationPolicy's
// job.
func downstreamMTLS(http bool) *corev3.TransportSocket {
	alpn := alpnInTCPMxc
	if http {
		alpn = alpnInHTTP
	}
	return &corev3.TransportSocket{
		Name: nameTLSSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         meshCommonTLS(nil, alpn),
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}
