package compile

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the four xDS resource types the proxy subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// Type URLs of the typed_config extensions in the subset.
const (
	hcmType          = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType     = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	routerType       = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	httpOptionsType  = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	httpOptionsKey   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	resourceWrapType = "type.googleapis.com/envoy.service.discovery.v3.Resource"
)

// Decode unmarshals one xDS resource of type typeURL from a and returns its
// name: the Listener, RouteConfiguration or Cluster name, or a
// ClusterLoadAssignment's cluster_name, which must not be empty. A resource
// wrapped in envoy.service.discovery.v3.Resource is unwrapped. Decode does
// not run the generated protoc-gen-validate Validate methods and does not
// check the subset: the Parse functions check every field they read (see
// check.go).
func Decode(typeURL string, a *anypb.Any) (string, proto.Message, error) {
	if a == nil {
		return "", nil, errors.New("decode: nil resource")
	}
	if a.GetTypeUrl() == resourceWrapType {
		var r discoveryv3.Resource
		if err := proto.Unmarshal(a.GetValue(), &r); err != nil {
			return "", nil, fmt.Errorf("decode: Resource wrapper: %w", err)
		}
		if r.GetResource() == nil {
			return "", nil, fmt.Errorf("decode: Resource %q: no resource", r.GetName())
		}
		a = r.GetResource()
	}
	if a.GetTypeUrl() != typeURL {
		return "", nil, fmt.Errorf("decode: got type %q, want %q", a.GetTypeUrl(), typeURL)
	}
	var (
		msg  proto.Message
		name func() string
	)
	switch typeURL {
	case ListenerType:
		m := new(listenerv3.Listener)
		msg, name = m, m.GetName
	case RouteType:
		m := new(routev3.RouteConfiguration)
		msg, name = m, m.GetName
	case ClusterType:
		m := new(clusterv3.Cluster)
		msg, name = m, m.GetName
	case EndpointType:
		m := new(endpointv3.ClusterLoadAssignment)
		msg, name = m, m.GetClusterName
	default:
		return "", nil, fmt.Errorf("decode: unsupported type %q", typeURL)
	}
	if err := proto.Unmarshal(a.GetValue(), msg); err != nil {
		return "", nil, fmt.Errorf("decode: %s: %w", shortType(typeURL), err)
	}
	if name() == "" {
		return "", nil, fmt.Errorf("decode: %s: empty name", shortType(typeURL))
	}
	return name(), msg, nil
}

// unmarshalTyped decodes a typed_config of the expected type; the caller's
// parse function checks the fields it reads.
func unmarshalTyped(a *anypb.Any, want string, msg proto.Message) error {
	if a.GetTypeUrl() != want {
		return fmt.Errorf("typed_config: got type %q, want %q", a.GetTypeUrl(), want)
	}
	if err := proto.Unmarshal(a.GetValue(), msg); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	return nil
}

// shortType is the message name of a type URL, for error messages.
func shortType(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "listener"
	case RouteType:
		return "route"
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "endpoints"
	}
	return typeURL
}
