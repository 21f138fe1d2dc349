package snapshot

import (
	"time"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Snapshot is one coherent, immutable view of config and registry.
type Snapshot struct {
	Version  uint64 // increases with every published snapshot
	Config   *config.Set
	Registry *registry.Registry
	Mesh     Mesh
}

// Mesh holds mesh-wide settings, Istio's MeshConfig subset Trellis uses.
type Mesh struct {
	TrustDomain   string // "cluster.local" by default
	RootNamespace string // "istio-system" by default
	DomainSuffix  string // "cluster.local"
	// ProxyHTTPPort is the port of each sidecar's HTTP-proxy listener (Istio's
	// meshConfig.proxyHttpPort), bound on the workload's address; 0 disables it.
	ProxyHTTPPort uint32

	// Security settings (internal/meshconfig reads them from MeshConfig YAML).

	// PathNormalization is meshConfig.pathNormalization; the zero value is
	// Istio's default, BASE.
	PathNormalization PathNormalization
	// ExtensionProviders are meshConfig.extensionProviders of the ext_authz
	// kinds, by name, for AuthorizationPolicy action CUSTOM.
	ExtensionProviders []ExtAuthzProvider
	// OutboundRegistryOnly is meshConfig.outboundTrafficPolicy REGISTRY_ONLY;
	// false is Istio's installed default, ALLOW_ANY.
	OutboundRegistryOnly bool
	// CredentialsDir is where Gateway credentialName NAME finds its files in
	// local mode: CredentialsDir/NAME/{tls.crt,tls.key,ca.crt}
	// (trellisd --credentials-dir); empty means "credentials", relative to
	// the proxy's working directory.
	CredentialsDir string
}

// PathNormalization is how proxies normalise request paths before routing
// and authorization (Istio's meshConfig.pathNormalization).
type PathNormalization uint8

const (
	PathNormalizationBase                  PathNormalization = iota // RFC 3986 normalisation (Envoy normalize_path)
	PathNormalizationNone                                           // no normalisation
	PathNormalizationMergeSlashes                                   // BASE plus merging "//"
	PathNormalizationDecodeAndMergeSlashes                          // MERGE_SLASHES plus decoding %2F and %5C
)

// ExtAuthzProvider is one external authorization service (Istio's
// envoyExtAuthzHttp / envoyExtAuthzGrpc extension providers).
type ExtAuthzProvider struct {
	Name    string
	GRPC    bool          // envoyExtAuthzGrpc; false is envoyExtAuthzHttp
	Service string        // hostname of a mesh service, or an IP literal
	Port    uint32        // service port
	Timeout time.Duration // 0: Istio's default, 600s
	// FailOpen lets requests through when the service cannot be reached.
	FailOpen bool
	// StatusOnError is the status when the service fails; 0 means 403.
	StatusOnError uint32
	// PathPrefix (HTTP only) is prepended to the checked request's path.
	PathPrefix string
	// IncludeRequestHeaders (HTTP only) are sent to the service; empty means
	// Envoy's default set (:method, :path, :authority, content-length, authorization).
	IncludeRequestHeaders []string
	// HeadersToUpstreamOnAllow, HeadersToDownstreamOnDeny and
	// HeadersToDownstreamOnAllow (HTTP only) name the service's response
	// headers that are copied on.
	HeadersToUpstreamOnAllow   []string
	HeadersToDownstreamOnDeny  []string
	HeadersToDownstreamOnAllow []string
}

// DefaultMesh returns Istio's defaults.
func DefaultMesh() Mesh {
	return Mesh{TrustDomain: "cluster.local", RootNamespace: "istio-system", DomainSuffix: "cluster.local", ProxyHTTPPort: 15080}
}
