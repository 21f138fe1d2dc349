package httpproxy

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// defaultConnectTimeout is Envoy's (and Istio's) cluster connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// Config is the request path's view of one runtime.Config: route tables
// indexed, header names canonicalised and each cluster's picker and
// transports resolved. It is immutable once built and shared by all the
// handlers of a config.
type Config struct {
	rt       *runtime.Config
	tables   map[string]*table
	clusters map[string]*upstream
	unknown  [2]*clusterStats // stats for requests without a cluster, by direction
}

// Runtime returns the config c was built from.
func (c *Config) Runtime() *runtime.Config { return c.rt }

// NewConfig compiles rt. pickers holds one picker per cluster (lb.Build);
// clusters without one get no healthy endpoint. pools supplies transports
// and is required; metrics may be nil.
func NewConfig(rt *runtime.Config, pickers map[string]lb.Picker, pools *Pools, metrics *Metrics) *Config {
	c := &Config{
		rt:       rt,
		tables:   make(map[string]*table, len(rt.Routes)),
		clusters: make(map[string]*upstream, len(rt.Clusters)),
		unknown: [2]*clusterStats{
			metrics.cluster(runtime.Outbound, "unknown"),
			metrics.cluster(runtime.Inbound, "unknown"),
		},
	}
	for name, cl := range rt.Clusters {
		p := pickers[name]
		if p == nil {
			p = lb.New(&runtime.Cluster{})
		}
		ct := cl.ConnectTimeout
		if ct <= 0 {
			ct = defaultConnectTimeout
		}
		c.clusters[name] = &upstream{
			name:   name,
			proto:  cl.Protocol,
			picker: p,
			h1:     pools.transport(false, ct),
			h2:     pools.transport(true, ct),
			stats: [2]*clusterStats{
				metrics.cluster(runtime.Outbound, name),
				metrics.cluster(runtime.Inbound, name),
			},
		}
	}
	pools.attach(c.clusters, rt.Clusters) // upstream state, TLS, pool options (upstream_pools.go)
	for name, rtab := range rt.Routes {
		c.tables[name] = compileTable(rtab, c.clusters)
	}
	return c
}

// upstream is one cluster as the request path needs it.
type upstream struct {
	name   string
	proto  runtime.Protocol
	picker lb.Picker
	h1, h2 http.RoundTripper
	stats  [2]*clusterStats // by runtime.Direction
	ext    upstreamExt      // breakers, outlier state, TLS transports (upstream_pools.go)
}

// transportFor returns the transport for a request that arrived over
// HTTP/2 (downH2) or asks for a protocol upgrade.
func (u *upstream) transportFor(downH2, upgrade bool) http.RoundTripper {
	switch {
	case upgrade:
		// Upgrades (WebSocket) ride HTTP/1.1; see RFC 6455 section 4.
		return u.h1
	case u.proto == runtime.HTTP2:
		return u.h2
	case u.proto == runtime.UseDownstream && downH2:
		return u.h2
	default:
		return u.h1
	}
}

// Pools holds upstream connection pools, one transport per protocol and
// connect timeout. Pools outlive configs so that connections are reused
// across config changes. Safe for concurrent use; the request path never
// touches it (transports are resolved by NewConfig).
type Pools struct {
	mu  sync.Mutex
	m   map[poolKey]*http.Transport
	ext poolsExt // upstream state, secrets, mirrors (upstream_pools.go)
}

type poolKey struct {
	h2             bool
	connectTimeout time.Duration
	opts           transportOpts // TLS and connection options (upstream_pools.go)
}

// NewPools returns empty pools without upstream TLS secrets; see
// NewPoolsWith.
func NewPools() *Pools { return NewPoolsWith(PoolOptions{}) }

func (p *Pools) transport(h2 bool, connectTimeout time.Duration) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := poolKey{h2: h2, connectTimeout: connectTimeout}
	if t := p.m[k]; t != nil {
		return t
	}
	t := newTransport(h2, connectTimeout)
	p.m[k] = t
	return t
}

// CloseIdle closes idle upstream connections.
func (p *Pools) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.m {
		t.CloseIdleConnections()
	}
	p.ext.closeIdle() // HTTP/1.1 clients (upstream_pools.go)
}

// Close closes idle connections; in-flight ones finish on their own.
func (p *Pools) Close() error {
	p.ext.mirrors.Close() // waits for in-flight mirrors (mirror.go)
	p.closeClients()      // HTTP/1.1 clients (upstream_pools.go)
	p.CloseIdle()
	return nil
}

func newTransport(h2 bool, connectTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	if h2 {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	return &http.Transport{
		Proxy:               nil, // never the environment's HTTP_PROXY: we are the proxy
		DialContext:         d.DialContext,
		Protocols:           &protos,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// Pass bodies through untouched; Accept-Encoding is the client's call.
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// Streams are cheap; let gRPC multiplex on few connections.
			MaxConcurrentStreams: 1000,
		},
	}
}

// table is one RouteTable with its virtual hosts indexed by domain.
type table struct {
	exact  map[string]*vhost
	suffix []wildcard // "*.example.com" as ".example.com", longest first
	prefix []wildcard // "foo.*" as "foo.", longest first
	star   *vhost
}

type wildcard struct {
	part string
	vh   *vhost
}

type vhost struct {
	name       string
	routes     []*route
	perFilter  map[string]*runtime.FilterOverride // typed_per_filter_config
	requireTLS bool
}

func compileTable(rt *runtime.RouteTable, clusters map[string]*upstream) *table {
	// Sized up front: grown by doubling, the map of a sidecar's outbound
	// table (Istio lists ~8 domains per service) kept up to twice the
	// entries' memory (issue 5: KB per cluster).
	n := 0
	for _, v := range rt.VirtualHosts {
		n += len(v.Domains)
	}
	t := &table{exact: make(map[string]*vhost, n)}
	retries := map[*runtime.RetryPolicy]*retryPolicy{}
	for _, v := range rt.VirtualHosts {
		vh := &vhost{name: v.Name, perFilter: v.PerFilter, requireTLS: v.RequireTLS, routes: make([]*route, 0, len(v.Routes))}
		for _, r := range v.Routes {
			vh.routes = append(vh.routes, compileRoute(r, clusters, retries))
		}
		for _, d := range v.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.star == nil {
					t.star = vh
				}
			case strings.HasPrefix(d, "*"):
				t.suffix = append(t.suffix, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefix = append(t.prefix, wildcard{d[:len(d)-1], vh})
			default:
				if _, dup := t.exact[d]; !dup {
					t.exact[d] = vh
				}
			}
		}
	}
	longestFirst(t.suffix)
	longestFirst(t.prefix)
	return t
}

func longestFirst(ws []wildcard) {
	// Stable insertion sort: tables are small and ties keep config order.
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && len(ws[j].part) > len(ws[j-1].part); j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

// vhost returns the virtual host for host (Host or :authority) following
// Envoy: exact, then the longest suffix wildcard, then the longest prefix
// wildcard, then "*". A wildcard matches at least one character.
func (t *table) vhost(host string) *vhost {
	host = lower(host)
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	for _, w := range t.suffix {
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefix {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return t.star
}

// lower is strings.ToLower without allocating for the usual lower-case host.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
