package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	securityv1 "istio.io/api/security/v1"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// mtlsMode is a resolved PeerAuthentication mode.
type mtlsMode uint8

const (
	mtlsPermissive mtlsMode = iota // Istio's default: accept mTLS and plain text
	mtlsStrict
	mtlsDisable
)

func (m mtlsMode) String() string {
	return [...]string{"PERMISSIVE", "STRICT", "DISABLE"}[m]
}

// override returns the mode pa sets, or cur when pa leaves it UNSET
// (inherit from the parent scope).
func override(cur mtlsMode, pa *securityv1.PeerAuthentication_MutualTLS) mtlsMode {
	switch pa.GetMode() {
	case securityv1.PeerAuthentication_MutualTLS_STRICT:
		return mtlsStrict
	case securityv1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return mtlsPermissive
	case securityv1.PeerAuthentication_MutualTLS_DISABLE:
		return mtlsDisable
	}
	return cur
}

// peerAuthentications returns the mesh (root namespace, no selector),
// namespace (no selector) and workload (selector matching labels)
// PeerAuthentications for a workload in ns; each may be nil. Within a scope
// the first in name order wins (Istio: the oldest).
func (b *builder) peerAuthentications(ns string, labels map[string]string) (mesh, nsWide, workload *securityv1.PeerAuthentication) {
	for _, r := range b.snap.Config.List(config.KindPeerAuthentication) {
		pa, ok := r.Spec.(*securityv1.PeerAuthentication)
		if !ok {
			continue
		}
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case len(sel) > 0:
			if r.Meta.Namespace == ns && labels != nil && workload == nil && registry.LabelsMatch(sel, labels) {
				workload = pa
			}
		case r.Meta.Namespace == ns && nsWide == nil:
			nsWide = pa
		case r.Meta.Namespace == b.mesh.RootNamespace && mesh == nil:
			mesh = pa
		}
	}
	return mesh, nsWide, workload
}

// inboundMTLSMode is the PeerAuthentication mode of the proxy's own
// workload on port: mesh, then namespace, then workload, then the
// workload's portLevelMtls entry; UNSET inherits; PERMISSIVE by default.
func (b *builder) inboundMTLSMode(port uint32) mtlsMode {
	mesh, nsWide, workload := b.peerAuthentications(b.ns, b.labels)
	mode := mtlsPermissive
	mode = override(mode, mesh.GetMtls())
	mode = override(mode, nsWide.GetMtls())
	mode = override(mode, workload.GetMtls())
	if pl, ok := workload.GetPortLevelMtls()[port]; ok {
		mode = override(mode, pl)
	}
	return mode
}

// serviceMTLSMode is what a client can infer about a destination service
// from the namespace- and mesh-level PeerAuthentications (Istio's
// BestEffortInferServiceMTLSMode; workload-level policies are not used).
func (b *builder) serviceMTLSMode(svc *registry.Service) mtlsMode {
	mesh, nsWide, _ := b.peerAuthentications(svc.Namespace, nil)
	mode := override(mtlsPermissive, mesh.GetMtls())
	return override(mode, nsWide.GetMtls())
}

// inboundListener builds inbound_ADDR_PORT with the filter chains its
// PeerAuthentication mode calls for:
//
//	DISABLE     one plain-text chain
//	STRICT      tls_inspector; one chain, transport_protocol "tls", mTLS
//	PERMISSIVE  tls_inspector; the "tls" chain and a "raw_buffer" chain
//
// Each chain runs the workload's authentication and authorization filters
// before the terminal filter; HTTP chains set Istio's XFCC handling.
func (b *builder) inboundListener(name, addr string, port uint32, cluster string, http bool) *listenerv3.Listener {
	mode := b.inboundMTLSMode(port)
	chain := func(tls bool) *listenerv3.FilterChain {
		fc := &listenerv3.FilterChain{Filters: b.inboundFilters(name, cluster, http, tls)}
		switch {
		case mode == mtlsDisable:
		case tls:
			fc.Name = name + "_tls"
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
			fc.TransportSocket = downstreamMTLS(http)
		default:
			fc.Name = name + "_raw_buffer"
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
		}
		return fc
	}
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(addr, port),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
	}
	switch mode {
	case mtlsDisable:
		l.FilterChains = []*listenerv3.FilterChain{chain(false)}
	case mtlsStrict:
		l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		l.FilterChains = []*listenerv3.FilterChain{chain(true)}
	default:
		l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		l.FilterChains = []*listenerv3.FilterChain{chain(true), chain(false)}
	}
	return l
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       nameTLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&tlsinspectorv3.TlsInspector{})},
	}
}

// inboundFilters is one inbound chain's network filters: for HTTP the
// http_connection_manager with the workload's HTTP security filters; for
// TCP the network RBAC filters, then tcp_proxy.
func (b *builder) inboundFilters(name, cluster string, http, tls bool) []*listenerv3.Filter {
	if http {
		h := hcm(name, cluster, false)
		b.secureHCM(h, xfccInbound(tls))
		return []*listenerv3.Filter{{
			Name:       nameHCM,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(h)},
		}}
	}
	filters := b.networkSecurityFilters(name)
	return append(filters, &listenerv3.Filter{
		Name: nameTCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpv3.TcpProxy{
			StatPrefix:       name,
			ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	})
}

// xfcc is how an HCM treats x-forwarded-client-cert.
type xfcc struct {
	mode    hcmv3.HttpConnectionManager_ForwardClientCertDetails
	current *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails
}

// xfccInbound is Istio's sidecar inbound handling: over mTLS the header is
// appended with the peer's URI SAN (APPEND_FORWARD); over plain text
// there is no peer to vouch for, so whatever came in is replaced
// (SANITIZE_SET, which with no client certificate removes it).
func xfccInbound(tls bool) xfcc {
	if tls {
		return xfcc{
			mode:    hcmv3.HttpConnectionManager_APPEND_FORWARD,
			current: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Uri: true},
		}
	}
	return xfcc{mode: hcmv3.HttpConnectionManager_SANITIZE_SET}
}

// xfccGateway: a gateway is the edge; it never trusts an incoming XFCC.
var xfccGateway = xfcc{mode: hcmv3.HttpConnectionManager_SANITIZE_SET}
