package translator

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Envoy extension names and fixed resource names (docs/xds.md).
const (
	nameHCM             = "envoy.filters.network.http_connection_manager"
	nameTCPProxy        = "envoy.filters.network.tcp_proxy"
	nameRouter          = "envoy.filters.http.router"
	nameHTTPProtocolOpt = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	blackHoleCluster    = "BlackHoleCluster"
	httpProxyName       = "http_proxy"
)

// defaultConnectTimeout is Istio's meshConfig.connectTimeout default.
const defaultConnectTimeout = 10 * time.Second

// ads is the ConfigSource of every generated reference: ADS, v3.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// typed packs m into an Any deterministically. Marshalling a well-formed
// message cannot fail; a failure is a programming error.
func typed(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("translator: marshal %T: %v", m, err))
	}
	return a
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// clusterName is Istio's outbound|PORT|SUBSET|HOST.
func clusterName(port uint32, subset, host string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// inboundName is Istio's inbound|PORT|| (cluster and route table).
func inboundName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

func portString(p uint32) string { return strconv.FormatUint(uint64(p), 10) }

// listenerName is ADDRESS_PORT.
func listenerName(addr string, port uint32) string { return addr + "_" + portString(port) }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
