package compile

import (
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// maxPriority is Envoy's bound on a locality's priority (PGV lte: 128).
const maxPriority = 128

// Cluster is a parsed Cluster. Runtime has no endpoints for an EDS cluster;
// Build fills them from the ClusterLoadAssignment named EDS.
type Cluster struct {
	Runtime *runtime.Cluster
	// EDS is the ClusterLoadAssignment name (eds_cluster_config.service_name,
	// or the cluster name) for an EDS cluster; empty otherwise.
	EDS string
}

// ParseCluster checks c against the subset in docs/xds.md and converts it.
func ParseCluster(c *clusterv3.Cluster) (*Cluster, error) {
	out, err := parseCluster(c)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, nil
}

func parseCluster(c *clusterv3.Cluster) (*Cluster, error) {
	switch {
	case c.GetTransportSocketMatcher() != nil:
		return nil, fmt.Errorf("transport_socket_matcher: unsupported")
	case c.GetLoadBalancingPolicy() != nil:
		return nil, fmt.Errorf("load_balancing_policy: unsupported, use lb_policy")
	case c.GetLbSubsetConfig() != nil:
		return nil, fmt.Errorf("lb_subset_config: unsupported")
	case len(c.GetHealthChecks()) > 0:
		return nil, fmt.Errorf("health_checks: unsupported")
	case len(c.GetFilters()) > 0:
		return nil, fmt.Errorf("filters: unsupported")
	case c.GetUpstreamConfig() != nil:
		return nil, fmt.Errorf("upstream_config: unsupported")
	}
	if err := positiveDuration("connect_timeout", c.GetConnectTimeout()); err != nil {
		return nil, err
	}
	rc := &runtime.Cluster{Name: c.GetName(), ConnectTimeout: durationOf(c.GetConnectTimeout())}
	out := &Cluster{Runtime: rc}
	switch t := c.GetClusterDiscoveryType().(type) {
	case *clusterv3.Cluster_Type:
		switch t.Type {
		case clusterv3.Cluster_EDS:
			if c.GetLoadAssignment() != nil {
				return nil, fmt.Errorf("load_assignment: unsupported on an EDS cluster")
			}
			if err := checkConfigSource("eds_cluster_config.eds_config", c.GetEdsClusterConfig().GetEdsConfig()); err != nil {
				return nil, err
			}
			out.EDS = c.GetEdsClusterConfig().GetServiceName()
			if out.EDS == "" {
				out.EDS = c.GetName()
			}
		case clusterv3.Cluster_ORIGINAL_DST:
			// Endpoints come from each request's destination; see
			// runtime.OriginalDst.
		case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
			rc.DNS = t.Type != clusterv3.Cluster_STATIC
			if la := c.GetLoadAssignment(); la != nil {
				eps, err := parseEndpoints("load_assignment.", la, !rc.DNS)
				if err != nil {
					return nil, err
				}
				rc.Endpoints = eps
			}
		default:
			return nil, fmt.Errorf("type: unsupported cluster type %v", t.Type)
		}
	case *clusterv3.Cluster_ClusterType:
		return nil, fmt.Errorf("cluster_type: unsupported custom cluster type %q", t.ClusterType.GetName())
	default:
		return nil, fmt.Errorf("type: unsupported cluster discovery %T", t)
	}
	if err := parseLB(c, rc); err != nil {
		return nil, err
	}
	var err error
	if rc.CircuitBreakers, err = parseCircuitBreakers(c.GetCircuitBreakers()); err != nil {
		return nil, err
	}
	if rc.Outlier, err = parseOutlier(c.GetOutlierDetection()); err != nil {
		return nil, err
	}
	rc.Pool.KeepAlive = parseKeepAlive(c)
	if v := c.GetMaxRequestsPerConnection(); v != nil { // deprecated form
		rc.Pool.MaxRequestsPerConnection = v.GetValue()
	}
	if rc.TLS, err = parseUpstreamSocket("transport_socket", c.GetTransportSocket()); err != nil {
		return nil, err
	}
	if rc.TLSMatches, err = parseSocketMatches(c.GetTransportSocketMatches()); err != nil {
		return nil, err
	}
	if c.GetHttp2ProtocolOptions() != nil { // deprecated form
		rc.Protocol = runtime.HTTP2
	}
	for key, a := range c.GetTypedExtensionProtocolOptions() {
		path := fmt.Sprintf("typed_extension_protocol_options[%q]", key)
		if key != httpOptionsKey && a.GetTypeUrl() != httpOptionsType {
			return nil, fmt.Errorf("%s: unsupported protocol options", path)
		}
		var o httpv3.HttpProtocolOptions
		if err := unmarshalTyped(a, httpOptionsType, &o); err != nil {
			return nil, fmt.Errorf("%s.%w", path, err)
		}
		p, err := parseHTTPOptionsFull(path, &o, &rc.Pool)
		if err != nil {
			return nil, err
		}
		rc.Protocol = p
	}
	return out, nil
}

func parseHTTPOptions(path string, o *httpv3.HttpProtocolOptions) (runtime.Protocol, error) {
	switch {
	case len(o.GetHttpFilters()) > 0:
		return 0, fmt.Errorf("%s.http_filters: unsupported", path)
	case o.GetRetryPolicy() != nil:
		return 0, fmt.Errorf("%s.retry_policy: unsupported", path)
	case len(o.GetRequestMirrorPolicies()) > 0:
		return 0, fmt.Errorf("%s.request_mirror_policies: unsupported", path)
	}
	switch p := o.GetUpstreamProtocolOptions().(type) {
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		switch {
		case p.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil:
			return runtime.HTTP2, nil
		case p.ExplicitHttpConfig.GetHttpProtocolOptions() != nil:
			return runtime.HTTP1, nil
		}
		return 0, fmt.Errorf("%s.explicit_http_config: unsupported protocol, want http_protocol_options or http2_protocol_options", path)
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		if p.UseDownstreamProtocolConfig.GetHttp3ProtocolOptions() != nil {
			return 0, fmt.Errorf("%s.use_downstream_protocol_config.http3_protocol_options: unsupported", path)
		}
		return runtime.UseDownstream, nil
	case nil:
		return runtime.HTTP1, nil
	default:
		return 0, fmt.Errorf("%s: unsupported upstream protocol options %T", path, p)
	}
}

// ParseEndpoints checks a ClusterLoadAssignment delivered by EDS and
// converts its endpoints, which must be IP addresses.
func ParseEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]runtime.Endpoint, error) {
	eps, err := parseEndpoints("", cla, true)
	if err != nil {
		return nil, fmt.Errorf("endpoints %q: %w", cla.GetClusterName(), err)
	}
	return eps, nil
}

// parseEndpoints prefixes field paths with prefix, empty or ending in ".".
func parseEndpoints(prefix string, cla *endpointv3.ClusterLoadAssignment, ipOnly bool) ([]runtime.Endpoint, error) {
	if len(cla.GetNamedEndpoints()) > 0 {
		return nil, fmt.Errorf("%snamed_endpoints: unsupported", prefix)
	}
	if len(cla.GetPolicy().GetDropOverloads()) > 0 {
		return nil, fmt.Errorf("%spolicy.drop_overloads: unsupported", prefix)
	}
	n := 0
	for _, lle := range cla.GetEndpoints() {
		n += len(lle.GetLbEndpoints())
	}
	// Exactly sized: appending would keep up to twice the endpoints'
	// memory for the config's life (issue 5: KB per endpoint).
	out := make([]runtime.Endpoint, 0, n)
	var match map[string]string // the previous endpoint's, to share
	for i, lle := range cla.GetEndpoints() {
		lpath := fmt.Sprintf("%sendpoints[%d]", prefix, i)
		switch {
		case lle.GetLedsClusterLocalityConfig() != nil:
			return nil, fmt.Errorf("%s.leds_cluster_locality_config: unsupported", lpath)
		case lle.GetLoadBalancingWeight() != nil && lle.GetLoadBalancingWeight().GetValue() == 0:
			return nil, fmt.Errorf("%s.load_balancing_weight: 0, want at least 1", lpath)
		case lle.GetPriority() > maxPriority:
			return nil, fmt.Errorf("%s.priority: %d exceeds %d", lpath, lle.GetPriority(), maxPriority)
		}
		loc := runtime.Locality{
			Region:  lle.GetLocality().GetRegion(),
			Zone:    lle.GetLocality().GetZone(),
			SubZone: lle.GetLocality().GetSubZone(),
		}
		for j, lb := range lle.GetLbEndpoints() {
			epath := fmt.Sprintf("%s.lb_endpoints[%d]", lpath, j)
			if lb.GetEndpointName() != "" {
				return nil, fmt.Errorf("%s.endpoint_name: unsupported", epath)
			}
			ep, err := parseEndpoint(epath+".endpoint.address", lb.GetEndpoint().GetAddress(), ipOnly)
			if err != nil {
				return nil, err
			}
			ep.Locality, ep.Priority = loc, lle.GetPriority()
			ep.LocalityWeight = lle.GetLoadBalancingWeight().GetValue()
			if fs := lb.GetMetadata().GetFilterMetadata()[socketMatchKey]; fs != nil {
				match = socketMatch(fs, match)
				ep.SocketMatch = match
			}
			ep.Weight = 1
			if w := lb.GetLoadBalancingWeight(); w != nil {
				if ep.Weight = w.GetValue(); ep.Weight == 0 {
					return nil, fmt.Errorf("%s.load_balancing_weight: 0, want at least 1", epath)
				}
			}
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				ep.Healthy = true
			default: // UNHEALTHY, DRAINING, TIMEOUT; DEGRADED is treated as unhealthy
			}
			out = append(out, ep)
		}
	}
	return out, nil
}

// sidecarMatch is the SocketMatch of every endpoint with a sidecar under
// Istio's auto mTLS, and noMatch an empty one (Istio's tlsMode-disabled
// transport socket match): shared, never modified (see runtime.Endpoint).
var (
	sidecarMatch = map[string]string{"tlsMode": "istio"}
	noMatch      = map[string]string{}
)

// socketMatch converts an endpoint's envoy.transport_socket_match metadata
// (its string values) or a cluster's transport_socket_matches match.
// Results are shared: prev when it holds the same pairs (the endpoints of
// one ClusterLoadAssignment mostly do), else sidecarMatch or noMatch when
// it is one of those. A map per endpoint was about 330 bytes of the
// 780 each endpoint kept (issue 5).
func socketMatch(fs *structpb.Struct, prev map[string]string) map[string]string {
	n, same := 0, prev != nil
	for k, v := range fs.GetFields() {
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			continue
		}
		n++
		if same {
			pv, ok := prev[k]
			same = ok && pv == sv.StringValue
		}
	}
	if same && n == len(prev) {
		return prev
	}
	switch {
	case n == 0:
		return noMatch
	case n == 1 && fs.GetFields()["tlsMode"].GetStringValue() == sidecarMatch["tlsMode"]:
		return sidecarMatch
	}
	m := make(map[string]string, n)
	for k, v := range fs.GetFields() {
		if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			m[k] = sv.StringValue
		}
	}
	return m
}

func parseEndpoint(path string, a *corev3.Address, ipOnly bool) (runtime.Endpoint, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return runtime.Endpoint{}, fmt.Errorf("%s: want socket_address", path)
	}
	if err := checkSocketAddress(path+".socket_address", sa); err != nil {
		return runtime.Endpoint{}, err
	}
	if sa.GetAddress() == "" {
		return runtime.Endpoint{}, fmt.Errorf("%s.socket_address.address: empty", path)
	}
	if sa.GetPortValue() == 0 {
		return runtime.Endpoint{}, fmt.Errorf("%s.socket_address.port_value: 0", path)
	}
	host := sa.GetAddress()
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	} else if ipOnly {
		return runtime.Endpoint{}, fmt.Errorf("%s.socket_address.address: %q is not an IP address", path, host)
	}
	return runtime.Endpoint{Host: host, Port: uint16(sa.GetPortValue())}, nil
}
