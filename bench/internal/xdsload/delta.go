package xdsload

import (
	"context"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// delta runs one incremental ADS stream until it fails or ctx ends.
func (p *proxy) delta(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	stream, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("delta stream: %w", err)
	}
	st := &state{got: map[string]bool{}}
	clusters := map[string]string{}    // cluster name → EDS name ("" for non-EDS)
	listeners := map[string][]string{} // listener name → route names
	// Wildcard subscriptions: the first request of a type names nothing.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: p.node, TypeUrl: resourcev3.ClusterType}); err != nil {
		return fmt.Errorf("delta send: %w", err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType}); err != nil {
		return fmt.Errorf("delta send: %w", err)
	}
	// resubscribe moves the subscription of typeURL from *have to want.
	resubscribe := func(typeURL string, have *[]string, want []string) error {
		if slices.Equal(*have, want) {
			return nil
		}
		sub, unsub := diff(*have, want)
		*have = want
		return stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL,
			ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub})
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("delta recv: %w", err)
		}
		w := p.received(proto.Size(resp), func(yield func([]byte) bool) {
			for _, r := range resp.GetResources() {
				if !yield(r.GetResource().GetValue()) {
					return
				}
			}
		})
		t := resp.GetTypeUrl()
		st.got[t] = true
		switch t {
		case resourcev3.ClusterType:
			for _, r := range resp.GetResources() {
				clusters[r.GetName()] = edsName(r.GetResource())
			}
			for _, n := range resp.GetRemovedResources() {
				delete(clusters, n)
			}
			want := map[string]bool{}
			for _, n := range clusters {
				if n != "" {
					want[n] = true
				}
			}
			err = resubscribe(resourcev3.EndpointType, &st.edsNames, sortedKeys(want))
		case resourcev3.ListenerType:
			for _, r := range resp.GetResources() {
				listeners[r.GetName()] = routeNames(r.GetResource())
			}
			for _, n := range resp.GetRemovedResources() {
				delete(listeners, n)
			}
			want := map[string]bool{}
			for _, names := range listeners {
				for _, n := range names {
					want[n] = true
				}
			}
			err = resubscribe(resourcev3.RouteType, &st.routeNames, sortedKeys(want))
		}
		if err != nil {
			return fmt.Errorf("delta send: %w", err)
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
			return fmt.Errorf("delta ack: %w", err)
		}
		if w != nil {
			w.observe(p.index)
		}
		p.synced.Store(st.synced())
	}
}

// diff returns the names in want but not have, and in have but not want. Both
// inputs are sorted.
func diff(have, want []string) (sub, unsub []string) {
	for _, n := range want {
		if _, ok := slices.BinarySearch(have, n); !ok {
			sub = append(sub, n)
		}
	}
	for _, n := range have {
		if _, ok := slices.BinarySearch(want, n); !ok {
			unsub = append(unsub, n)
		}
	}
	return sub, unsub
}
