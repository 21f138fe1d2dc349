package xdsclient

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/compile"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// The order subscriptions are opened in, as Envoy: CDS then EDS, LDS then RDS.
var typeOrder = []string{compile.ClusterType, compile.EndpointType, compile.ListenerType, compile.RouteType}

// wildcard reports whether typeURL is subscribed to as a whole (LDS, CDS)
// rather than by the names other resources reference (RDS, EDS).
func wildcard(typeURL string) bool {
	return typeURL == compile.ListenerType || typeURL == compile.ClusterType
}

// item is one resource of a response, before decoding.
type item struct {
	name    string // delta only: Resource.name; empty in state-of-the-world
	version string // delta only: Resource.version
	any     *anypb.Any
}

// response is one DiscoveryResponse or DeltaDiscoveryResponse, transport
// neutral.
type response struct {
	typeURL string
	version string // version_info, or system_version_info for delta
	nonce   string
	items   []item
	removed []string // delta only
	// full is set for state-of-the-world LDS and CDS: the response is the
	// complete set and anything it omits is removed.
	full bool
}

// subscription is one RDS or EDS name the client wants.
type subscription struct {
	since time.Time // when the name was first wanted, for the warming timeout
}

// state is everything the client knows; it outlives streams so that the last
// config survives a reconnect. It is owned by Run's goroutine.
type state struct {
	log  *slog.Logger
	warm time.Duration

	// held is type → name → digest of every stored resource. The decoded
	// protos are not kept: the parsed form is what Build needs, and the
	// protos cost more than it per resource (issue 5: KB per cluster and
	// endpoint). The digest tells an unchanged resource from a new one.
	held     map[string]map[string]digest
	versions map[string]map[string]string // type → name → delta resource version
	accepted map[string]string            // type → last accepted version_info (SotW)
	parsed   *compile.Parsed
	subs     map[string]map[string]subscription // RDS/EDS type → name → since

	seen      map[string]bool // types that answered at least once
	version   string          // version of the last accepted response
	dirty     bool            // accepted changes not yet published
	published bool            // a config was published at least once
}

func newState(log *slog.Logger, warm time.Duration) *state {
	s := &state{
		log:      log,
		warm:     warm,
		held:     map[string]map[string]digest{},
		versions: map[string]map[string]string{},
		accepted: map[string]string{},
		parsed:   compile.NewParsed(),
		subs:     map[string]map[string]subscription{},
		seen:     map[string]bool{},
	}
	for _, t := range typeOrder {
		s.held[t] = map[string]digest{}
		s.versions[t] = map[string]string{}
	}
	s.subs[compile.RouteType] = map[string]subscription{}
	s.subs[compile.EndpointType] = map[string]subscription{}
	return s
}

// digest identifies a resource's content: SHA-256 of its serialized bytes.
// Two encodings of one message may differ (proto encoding is not
// canonical); that costs at most a rebuild, never a missed change.
type digest [sha256.Size]byte

func digestOf(a *anypb.Any) digest {
	h := sha256.New()
	h.Write([]byte(a.GetTypeUrl()))
	h.Write([]byte{0})
	h.Write(a.GetValue())
	var d digest
	h.Sum(d[:0])
	return d
}

// subscribed returns the sorted names wanted for RDS or EDS.
func (s *state) subscribed(typeURL string) []string {
	return slices.Sorted(maps.Keys(s.subs[typeURL]))
}

// subChange is a change of RDS or EDS names after a listener or cluster update.
type subChange struct {
	typeURL        string
	added, removed []string
}

// apply decodes, parses and stores one response. On error nothing is
// stored and the error is the NACK's detail. On success it returns the
// subscription changes the transport must send.
func (s *state) apply(r *response, now time.Time) ([]subChange, error) {
	decoded := make(map[string]digest, len(r.items))
	parsed := make(map[string]any, len(r.items))
	for _, it := range r.items {
		name, msg, err := compile.Decode(r.typeURL, it.any)
		if err != nil {
			return nil, err
		}
		if it.name != "" && it.name != name {
			return nil, fmt.Errorf("resource %q: carries %s %q", it.name, typeName(r.typeURL), name)
		}
		if _, dup := decoded[name]; dup {
			return nil, fmt.Errorf("%s %q: duplicate in one response", typeName(r.typeURL), name)
		}
		if !wildcard(r.typeURL) {
			if _, ok := s.subs[r.typeURL][name]; !ok {
				continue // not asked for (or no longer): ignore, as Envoy does
			}
		}
		p, err := parse(msg)
		if err != nil {
			return nil, err
		}
		decoded[name], parsed[name] = digestOf(it.any), p
	}
	for _, name := range r.removed {
		if _, dup := decoded[name]; dup {
			return nil, fmt.Errorf("%s %q: both updated and removed", typeName(r.typeURL), name)
		}
	}

	// Commit.
	held := s.held[r.typeURL]
	changed := false
	remove := func(name string) {
		if _, ok := held[name]; !ok {
			return
		}
		changed = true
		delete(held, name)
		delete(s.versions[r.typeURL], name)
		s.forget(r.typeURL, name)
	}
	if r.full {
		for name := range held {
			if _, ok := decoded[name]; !ok {
				remove(name)
			}
		}
	}
	for _, name := range r.removed {
		remove(name)
	}
	for _, it := range r.items {
		if it.version != "" && it.name != "" {
			if _, ok := decoded[it.name]; ok {
				s.versions[r.typeURL][it.name] = it.version
			}
		}
	}
	for name, d := range decoded {
		if old, ok := held[name]; ok && old == d {
			continue
		}
		changed = true
		held[name] = d
		s.store(name, parsed[name])
	}
	if r.version != "" {
		s.version = r.version
	}
	s.seen[r.typeURL] = true
	if !s.published {
		s.dirty = true // the first config may be empty, but it is published
	}
	if !changed {
		return nil, nil
	}
	s.dirty = true
	switch r.typeURL {
	case compile.ListenerType:
		return s.resubscribe(compile.RouteType, s.parsed.RouteNames(), now), nil
	case compile.ClusterType:
		return s.resubscribe(compile.EndpointType, s.parsed.EndpointNames(), now), nil
	}
	return nil, nil
}

func parse(msg proto.Message) (any, error) {
	switch m := msg.(type) {
	case *listenerv3.Listener:
		return compile.ParseListener(m)
	case *routev3.RouteConfiguration:
		return compile.ParseRouteConfiguration(m)
	case *clusterv3.Cluster:
		return compile.ParseCluster(m)
	case *endpointv3.ClusterLoadAssignment:
		return compile.ParseEndpoints(m)
	}
	return nil, errors.New("parse: unexpected message type")
}

func (s *state) store(name string, p any) {
	switch v := p.(type) {
	case *compile.Listener:
		s.parsed.Listeners[name] = v
	case *runtime.RouteTable:
		s.parsed.Routes[name] = v
	case *compile.Cluster:
		s.parsed.Clusters[name] = v
	case []runtime.Endpoint:
		s.parsed.Endpoints[name] = v
	}
}

func (s *state) forget(typeURL, name string) {
	switch typeURL {
	case compile.ListenerType:
		delete(s.parsed.Listeners, name)
	case compile.RouteType:
		delete(s.parsed.Routes, name)
	case compile.ClusterType:
		delete(s.parsed.Clusters, name)
	case compile.EndpointType:
		delete(s.parsed.Endpoints, name)
	}
}

// resubscribe makes want the RDS or EDS subscription; names no longer
// wanted are dropped from the cache, as Envoy does.
func (s *state) resubscribe(typeURL string, want []string, now time.Time) []subChange {
	subs := s.subs[typeURL]
	c := subChange{typeURL: typeURL}
	wanted := make(map[string]bool, len(want))
	for _, name := range want {
		wanted[name] = true
		if _, ok := subs[name]; !ok {
			subs[name] = subscription{since: now}
			c.added = append(c.added, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(subs)) {
		if !wanted[name] {
			delete(subs, name)
			c.removed = append(c.removed, name)
			if _, ok := s.held[typeURL][name]; ok {
				delete(s.held[typeURL], name)
				delete(s.versions[typeURL], name)
				s.forget(typeURL, name)
				s.dirty = true
			}
		}
	}
	if len(c.added) == 0 && len(c.removed) == 0 {
		return nil
	}
	return []subChange{c}
}

// pending returns the wanted RDS/EDS names that have never arrived and are
// still within the warming timeout, and the earliest time one of them
// times out.
func (s *state) pending(now time.Time) (names []string, deadline time.Time) {
	for _, typeURL := range []string{compile.RouteType, compile.EndpointType} {
		for _, name := range s.subscribed(typeURL) {
			if _, ok := s.held[typeURL][name]; ok {
				continue
			}
			d := s.subs[typeURL][name].since.Add(s.warm)
			if !now.Before(d) {
				continue
			}
			names = append(names, typeName(typeURL)+" "+name)
			if deadline.IsZero() || d.Before(deadline) {
				deadline = d
			}
		}
	}
	return names, deadline
}

// missing lists wanted RDS/EDS names that are absent (after warming timed out).
func (s *state) missing() []string {
	var names []string
	for _, typeURL := range []string{compile.RouteType, compile.EndpointType} {
		for _, name := range s.subscribed(typeURL) {
			if _, ok := s.held[typeURL][name]; !ok {
				names = append(names, typeName(typeURL)+" "+name)
			}
		}
	}
	return names
}

// build returns the config to publish, or nil when there is nothing new or
// the set is still warming. As Envoy's initialisation, nothing is published
// before both LDS and CDS have answered once.
func (s *state) build(now time.Time) *runtime.Config {
	if !s.dirty || !s.seen[compile.ListenerType] || !s.seen[compile.ClusterType] {
		return nil
	}
	if names, _ := s.pending(now); len(names) > 0 {
		return nil
	}
	if m := s.missing(); len(m) > 0 {
		s.log.Warn("publishing config with resources missing after warming timeout", "missing", m, "timeout", s.warm)
	}
	s.dirty = false
	s.published = true
	return compile.Build(s.version, s.parsed)
}

func typeName(typeURL string) string {
	switch typeURL {
	case compile.ListenerType:
		return "listener"
	case compile.RouteType:
		return "route"
	case compile.ClusterType:
		return "cluster"
	case compile.EndpointType:
		return "endpoints"
	}
	return typeURL
}
