package meshconfig

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// maxFileSize bounds what Load reads; a MeshConfig is a few kilobytes.
const maxFileSize = 1 << 20

// Load reads a MeshConfig YAML file. Warnings name settings that were
// read but are not used by Trellis.
func Load(path string) (snapshot.Mesh, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapshot.Mesh{}, nil, fmt.Errorf("meshconfig: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return snapshot.Mesh{}, nil, fmt.Errorf("meshconfig: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return snapshot.Mesh{}, nil, fmt.Errorf("meshconfig: %s: larger than %d bytes", path, maxFileSize)
	}
	m, warns, err := Parse(data)
	if err != nil {
		return snapshot.Mesh{}, nil, fmt.Errorf("meshconfig: %s: %w", path, err)
	}
	return m, warns, nil
}

// Parse reads MeshConfig YAML and maps it onto snapshot.DefaultMesh(). An
// empty document gives the defaults.
func Parse(data []byte) (snapshot.Mesh, []string, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return snapshot.Mesh{}, nil, fmt.Errorf("parse: %w", err)
	}
	mc := &meshv1alpha1.MeshConfig{}
	if s := strings.TrimSpace(string(js)); s != "null" && s != "" {
		if err := protojson.Unmarshal(js, mc); err != nil {
			return snapshot.Mesh{}, nil, fmt.Errorf("parse: %w", err)
		}
	}
	return FromProto(mc)
}

// FromProto maps a MeshConfig onto snapshot.DefaultMesh(), validating the
// fields Trellis uses.
func FromProto(mc *meshv1alpha1.MeshConfig) (snapshot.Mesh, []string, error) {
	m := snapshot.DefaultMesh()
	var warns []string
	var errs []error
	m.TrustDomain = cmp.Or(mc.GetTrustDomain(), m.TrustDomain)
	m.RootNamespace = cmp.Or(mc.GetRootNamespace(), m.RootNamespace)
	if p := mc.GetProxyHttpPort(); p != 0 {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("proxyHttpPort: %d is not a port", p))
		} else {
			m.ProxyHTTPPort = uint32(p)
		}
	}
	switch mc.GetPathNormalization().GetNormalization() {
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT, meshv1alpha1.MeshConfig_ProxyPathNormalization_BASE:
		m.PathNormalization = snapshot.PathNormalizationBase
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE:
		m.PathNormalization = snapshot.PathNormalizationNone
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		m.PathNormalization = snapshot.PathNormalizationMergeSlashes
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		m.PathNormalization = snapshot.PathNormalizationDecodeAndMergeSlashes
	}
	if otp := mc.GetOutboundTrafficPolicy(); otp != nil {
		switch otp.GetMode() {
		case meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY:
			m.OutboundRegistryOnly = true
		case meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY:
		default:
			warns = append(warns, fmt.Sprintf("outboundTrafficPolicy.mode %s is treated as ALLOW_ANY", otp.GetMode()))
		}
	}
	seen := map[string]int{}
	for i, ep := range mc.GetExtensionProviders() {
		path := fmt.Sprintf("extensionProviders[%d]", i)
		if ep.GetName() == "" {
			errs = append(errs, fmt.Errorf("%s.name: is required", path))
			continue
		}
		if first, dup := seen[ep.GetName()]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is already used by extensionProviders[%d]", path, ep.GetName(), first))
			continue
		}
		seen[ep.GetName()] = i
		p, ok, err := extAuthz(path, ep)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			warns = append(warns, fmt.Sprintf("%s: provider %q is not an ext_authz provider; ignored", path, ep.GetName()))
		default:
			m.ExtensionProviders = append(m.ExtensionProviders, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return snapshot.Mesh{}, nil, err
	}
	return m, warns, nil
}

// extAuthz maps an envoyExtAuthzHttp or envoyExtAuthzGrpc provider; ok is
// false for other provider kinds.
func extAuthz(path string, ep *meshv1alpha1.MeshConfig_ExtensionProvider) (snapshot.ExtAuthzProvider, bool, error) {
	p := snapshot.ExtAuthzProvider{Name: ep.GetName()}
	var status string
	switch {
	case ep.GetEnvoyExtAuthzHttp() != nil:
		h := ep.GetEnvoyExtAuthzHttp()
		path += ".envoyExtAuthzHttp"
		p.Service, p.Port, p.FailOpen, status = h.GetService(), h.GetPort(), h.GetFailOpen(), h.GetStatusOnError()
		p.Timeout = h.GetTimeout().AsDuration()
		p.PathPrefix = h.GetPathPrefix()
		p.IncludeRequestHeaders = append(append([]string(nil), h.GetIncludeRequestHeadersInCheck()...), h.GetIncludeHeadersInCheck()...)
		p.HeadersToUpstreamOnAllow = h.GetHeadersToUpstreamOnAllow()
		p.HeadersToDownstreamOnDeny = h.GetHeadersToDownstreamOnDeny()
		p.HeadersToDownstreamOnAllow = h.GetHeadersToDownstreamOnAllow()
		if pp := p.PathPrefix; pp != "" && !strings.HasPrefix(pp, "/") {
			return p, true, fmt.Errorf("%s.pathPrefix: %q must start with \"/\"", path, pp)
		}
	case ep.GetEnvoyExtAuthzGrpc() != nil:
		g := ep.GetEnvoyExtAuthzGrpc()
		path += ".envoyExtAuthzGrpc"
		p.GRPC = true
		p.Service, p.Port, p.FailOpen, status = g.GetService(), g.GetPort(), g.GetFailOpen(), g.GetStatusOnError()
		p.Timeout = g.GetTimeout().AsDuration()
	default:
		return p, false, nil
	}
	if p.Service == "" {
		return p, true, fmt.Errorf("%s.service: is required", path)
	}
	if p.Port == 0 || p.Port > 65535 {
		return p, true, fmt.Errorf("%s.port: must be between 1 and 65535, got %d", path, p.Port)
	}
	if p.Timeout < 0 {
		return p, true, fmt.Errorf("%s.timeout: must not be negative", path)
	}
	if status != "" {
		n, err := strconv.ParseUint(status, 10, 16)
		if err != nil || n < 100 || n > 599 {
			return p, true, fmt.Errorf("%s.statusOnError: %q is not an HTTP status", path, status)
		}
		p.StatusOnError = uint32(n)
	}
	return p, true, nil
}

// Provider returns the ext_authz provider named name, or false.
func Provider(m snapshot.Mesh, name string) (snapshot.ExtAuthzProvider, bool) {
	for _, p := range m.ExtensionProviders {
		if p.Name == name {
			return p, true
		}
	}
	return snapshot.ExtAuthzProvider{}, false
}
