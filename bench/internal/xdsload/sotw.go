package xdsload

import (
	"context"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// sotw runs one state-of-the-world ADS stream until it fails or ctx ends.
func (p *proxy) sotw(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	stream, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("sotw stream: %w", err)
	}
	st := &state{got: map[string]bool{}}
	// Last ACKed version and nonce per type, carried on re-subscriptions.
	version, nonce := map[string]string{}, map[string]string{}
	send := func(typeURL string, names []string) error {
		return stream.Send(&discoveryv3.DiscoveryRequest{Node: p.node, TypeUrl: typeURL, ResourceNames: names,
			VersionInfo: version[typeURL], ResponseNonce: nonce[typeURL]})
	}
	// Wildcard subscriptions for clusters and listeners, as Envoy starts.
	if err := send(resourcev3.ClusterType, nil); err != nil {
		return fmt.Errorf("sotw send: %w", err)
	}
	if err := send(resourcev3.ListenerType, nil); err != nil {
		return fmt.Errorf("sotw send: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("sotw recv: %w", err)
		}
		w := p.received(proto.Size(resp), func(yield func([]byte) bool) {
			for _, r := range resp.GetResources() {
				if !yield(r.GetValue()) {
					return
				}
			}
		})
		t := resp.GetTypeUrl()
		st.got[t] = true
		version[t], nonce[t] = resp.GetVersionInfo(), resp.GetNonce()
		var names []string
		switch t {
		case resourcev3.ClusterType:
			want := map[string]bool{}
			for _, r := range resp.GetResources() {
				if n := edsName(r); n != "" {
					want[n] = true
				}
			}
			if eds := sortedKeys(want); !slices.Equal(eds, st.edsNames) {
				st.edsNames = eds
				if err := send(resourcev3.EndpointType, eds); err != nil {
					return fmt.Errorf("sotw send: %w", err)
				}
			}
		case resourcev3.ListenerType:
			want := map[string]bool{}
			for _, r := range resp.GetResources() {
				for _, n := range routeNames(r) {
					want[n] = true
				}
			}
			if rds := sortedKeys(want); !slices.Equal(rds, st.routeNames) {
				st.routeNames = rds
				if err := send(resourcev3.RouteType, rds); err != nil {
					return fmt.Errorf("sotw send: %w", err)
				}
			}
		case resourcev3.EndpointType:
			names = st.edsNames
		case resourcev3.RouteType:
			names = st.routeNames
		}
		// ACK: the version and nonce just received, the same subscription.
		if err := send(t, names); err != nil {
			return fmt.Errorf("sotw ack: %w", err)
		}
		if w != nil {
			w.observe(p.index)
		}
		p.synced.Store(st.synced())
	}
}
