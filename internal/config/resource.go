package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Kind names a configuration type. The zero value is not a valid kind.
type Kind uint8

// The kinds Trellis understands.
const (
	KindServiceEntry Kind = iota + 1
	KindWorkloadEntry
	KindWorkloadGroup
	KindVirtualService
	KindDestinationRule
	KindGateway
	KindSidecar
	KindPeerAuthentication    // security.istio.io (validate_security.go)
	KindRequestAuthentication // security.istio.io
	KindAuthorizationPolicy   // security.istio.io

	// gateway.networking.k8s.io kinds (gatewayapi.go): Spec is nil and
	// GatewayAPI holds the decoded object.
	KindGatewayClass
	KindKubernetesGateway // Gateway of the Kubernetes Gateway API
	KindHTTPRoute
	KindGRPCRoute
	KindReferenceGrant
)

var kindNames = [...]string{
	KindServiceEntry:    "ServiceEntry",
	KindWorkloadEntry:   "WorkloadEntry",
	KindWorkloadGroup:   "WorkloadGroup",
	KindVirtualService:  "VirtualService",
	KindDestinationRule: "DestinationRule",
	KindGateway:         "Gateway",
	KindSidecar:         "Sidecar",

	KindPeerAuthentication:    "PeerAuthentication",
	KindRequestAuthentication: "RequestAuthentication",
	KindAuthorizationPolicy:   "AuthorizationPolicy",

	KindGatewayClass:      "GatewayClass",
	KindKubernetesGateway: "Gateway.gateway.networking.k8s.io",
	KindHTTPRoute:         "HTTPRoute",
	KindGRPCRoute:         "GRPCRoute",
	KindReferenceGrant:    "ReferenceGrant",
}

// String returns the kind as written in YAML, for example "VirtualService".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Kinds lists every kind in a stable order.
func Kinds() []Kind {
	return []Kind{KindServiceEntry, KindWorkloadEntry, KindWorkloadGroup, KindVirtualService,
		KindDestinationRule, KindGateway, KindSidecar,
		KindPeerAuthentication, KindRequestAuthentication, KindAuthorizationPolicy,
		KindGatewayClass, KindKubernetesGateway, KindHTTPRoute, KindGRPCRoute, KindReferenceGrant}
}

// Meta is the subset of Kubernetes object metadata Trellis uses.
type Meta struct {
	Name        string
	Namespace   string // "default" when the document names none
	Labels      map[string]string
	Annotations map[string]string
}

// Origin says where a resource was read from. Line is 1-based; 0 means unknown.
type Origin struct {
	File string
	Line int
}

func (o Origin) String() string {
	if o.Line > 0 {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}

// Key identifies a resource within a Set.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

// AnnotationGeneratedFrom annotates resources converted from others (the
// Gateway API's, internal/gatewayapi) with their sources' Keys, comma
// separated.
const AnnotationGeneratedFrom = "trellis.io/generated-from"

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Resource is one validated configuration object. It is immutable once
// built: callers must not modify Spec.
//
// Spec's dynamic type follows Kind: *networkingv1.ServiceEntry for
// KindServiceEntry, *networkingv1.VirtualService for KindVirtualService and so
// on (istio.io/api/networking/v1). For the Kubernetes Gateway API kinds
// (KindGatewayClass, KindKubernetesGateway, KindHTTPRoute, KindGRPCRoute,
// KindReferenceGrant) Spec is nil and GatewayAPI holds the object.
type Resource struct {
	Kind   Kind
	Meta   Meta
	Spec   proto.Message
	Origin Origin

	// GatewayAPI is the decoded gateway.networking.k8s.io object; nil for
	// every Istio kind.
	GatewayAPI *GatewayAPIObject
}

// Key returns the resource's identity.
func (r *Resource) Key() Key {
	return Key{Kind: r.Kind, Namespace: r.Meta.Namespace, Name: r.Meta.Name}
}
