package translator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// policyBase is one HTTP+gRPC service with five endpoints in four
// localities, and the client workload (us-east/a/1) whose proxy is
// translated.
const policyBase = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: grpc, protocol: GRPC}
  workloadSelector: {labels: {app: svc}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 127.0.1.1, labels: {app: client, version: v1}, locality: us-east/a/1, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-a1, namespace: default}
spec: {address: 127.0.2.1, labels: {app: svc, version: v1}, locality: us-east/a/1, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-a2, namespace: default}
spec: {address: 127.0.2.2, labels: {app: svc, version: v2}, locality: us-east/a/2, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-b, namespace: default}
spec: {address: 127.0.2.3, labels: {app: svc, version: v1}, locality: us-east/b/1, network: n2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-w, namespace: default}
spec: {address: 127.0.2.4, labels: {app: svc, version: v2}, locality: us-west/c/1, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-e, namespace: default}
spec: {address: 127.0.2.5, labels: {app: svc, version: v1}, locality: eu/d/1, network: n2}
`

const policySvc = "svc.default.svc.cluster.local"

// policyCases are DestinationRules for svc, one per feature; each has a
// golden file testdata/policy/NAME.golden.json with svc's clusters, their
// endpoints and the client's http_proxy route table.
var policyCases = []struct{ name, dr string }{
	{"defaults", ``},
	{"least-request-warmup", `
trafficPolicy:
  loadBalancer: {simple: LEAST_REQUEST, warmup: {duration: 60s, minimumPercent: 20, aggression: 2}}`},
	{"round-robin-warmup-deprecated", `
trafficPolicy:
  loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}`},
	{"random", `
trafficPolicy: {loadBalancer: {simple: RANDOM}}`},
	{"passthrough", `
trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}`},
	{"ring-hash-header", `
trafficPolicy:
  loadBalancer: {consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}}`},
	{"consistent-hash-default-ring", `
trafficPolicy:
  loadBalancer: {consistentHash: {httpQueryParameterName: user}}`},
	{"maglev-cookie-subsets", `
trafficPolicy:
  loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 60s, path: /}, maglev: {tableSize: 65537}}}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
- name: v2
  labels: {version: v2}`},
	{"connection-pool", `
trafficPolicy:
  connectionPool:
    tcp: {maxConnections: 10, connectTimeout: 2s, tcpKeepalive: {time: 60s, interval: 10s, probes: 3}}
    http: {http1MaxPendingRequests: 5, http2MaxRequests: 20, maxRequestsPerConnection: 1, maxRetries: 4, idleTimeout: 30s, h2UpgradePolicy: UPGRADE}`},
	{"outlier-detection", `
trafficPolicy:
  outlierDetection:
    consecutive5xxErrors: 5
    consecutiveGatewayErrors: 3
    consecutiveLocalOriginFailures: 2
    splitExternalLocalOriginErrors: true
    interval: 1s
    baseEjectionTime: 30s
    maxEjectionPercent: 50
    minHealthPercent: 20`},
	{"locality-failover", `
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1}
  loadBalancer: {localityLbSetting: {enabled: true, failover: [{from: us-east, to: eu}]}}`},
	{"locality-distribute", `
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute:
      - {from: us-west/*, to: {"us-west/*": 100}}
      - {from: us-east/a/*, to: {"us-east/a/*": 80, "us-west/*": 20}}`},
	{"locality-failover-priority", `
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1}
  loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network, version]}}`},
	{"locality-disabled", `
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1}
  loadBalancer: {localityLbSetting: {enabled: false}}`},
	{"tls-simple", `
trafficPolicy:
  tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, sni: svc.example.com, subjectAltNames: [svc.example.com, "spiffe://cluster.local/ns/default/sa/svc"]}`},
	{"tls-mutual-port-disable", `
trafficPolicy:
  tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem, caCertificates: /etc/certs/ca.pem}
  portLevelSettings:
  - port: {number: 81}
    tls: {mode: DISABLE}`},
	{"merge-host-subset-port", `
trafficPolicy:
  loadBalancer: {simple: LEAST_REQUEST}
  outlierDetection: {consecutive5xxErrors: 7}
  connectionPool: {tcp: {maxConnections: 100}}
  portLevelSettings:
  - port: {number: 81}
    loadBalancer: {simple: RANDOM}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 80}
      connectionPool: {tcp: {maxConnections: 1}}`},
}

func drYAML(spec string) string {
	if spec == "" {
		return ""
	}
	return "\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: svc, namespace: default}\nspec:\n  host: svc\n" +
		indent(strings.TrimPrefix(spec, "\n"), "  ")
}

func indent(s, by string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n")
}

func translatePolicy(t *testing.T, dr string) *Resources {
	t.Helper()
	res := Translate(snapshotOf(t, policyBase+drYAML(dr)), Proxy{Type: Sidecar, Namespace: "default", Name: "client", Address: "127.0.1.1"})
	validateAll(t, res)
	return res
}

func TestTrafficPolicyGolden(t *testing.T) {
	for _, tt := range policyCases {
		t.Run(tt.name, func(t *testing.T) {
			res := translatePolicy(t, tt.dr)
			keep := &Resources{Listeners: map[string]proto.Message{}, Routes: map[string]proto.Message{},
				Clusters: map[string]proto.Message{}, Endpoints: map[string]proto.Message{}}
			for n, m := range res.Clusters {
				if strings.HasSuffix(n, "|"+policySvc) {
					keep.Clusters[n] = m
				}
			}
			for n, m := range res.Endpoints {
				if strings.HasSuffix(n, "|"+policySvc) {
					keep.Endpoints[n] = m
				}
			}
			if rc, ok := res.Routes[httpProxyName]; ok {
				keep.Routes[httpProxyName] = rc
			}
			got := goldenJSON(t, keep)
			path := filepath.Join("testdata", "policy", tt.name+".golden.json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

// policyCase finds a case of policyCases by name.
func policyCase(t *testing.T, name string) string {
	t.Helper()
	for _, c := range policyCases {
		if c.name == name {
			return c.dr
		}
	}
	t.Fatalf("no policy case %q", name)
	return ""
}

func cluster(t *testing.T, res *Resources, name string) *clusterv3.Cluster {
	t.Helper()
	c, ok := res.Clusters[name].(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("no cluster %q", name)
	}
	return c
}

// TestTrafficPolicyFields states, per case, the Envoy fields a user's
// DestinationRule turns into, in one line per cluster.
func TestTrafficPolicyFields(t *testing.T) {
	c80, c81 := clusterName(80, "", policySvc), clusterName(81, "", policySvc)
	v180, v181 := clusterName(80, "v1", policySvc), clusterName(81, "v1", policySvc)
	tests := []struct {
		name string
		want map[string]string
	}{
		{"defaults", map[string]string{c80: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s", c81: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s h2"}},
		{"least-request-warmup", map[string]string{c80: "lb=LEAST_REQUEST choices=2 slowstart=1m0s/20%/2 cb=max panic=0 timeout=10s"}},
		{"round-robin-warmup-deprecated", map[string]string{c80: "lb=ROUND_ROBIN slowstart=30s/10%/1 cb=max panic=0 timeout=10s"}},
		{"random", map[string]string{c80: "lb=RANDOM cb=max panic=0 timeout=10s"}},
		{"passthrough", map[string]string{c80: "lb=CLUSTER_PROVIDED type=ORIGINAL_DST cb=max panic=0 timeout=10s"}},
		{"ring-hash-header", map[string]string{c80: "lb=RING_HASH ring=2048 cb=max panic=0 timeout=10s"}},
		{"consistent-hash-default-ring", map[string]string{c80: "lb=RING_HASH ring=1024 cb=max panic=0 timeout=10s"}},
		{"maglev-cookie-subsets", map[string]string{c80: "lb=MAGLEV maglev=65537 cb=max panic=0 timeout=10s", v180: "lb=RING_HASH ring=1024 cb=max panic=0 timeout=10s"}},
		{"connection-pool", map[string]string{
			c80: "lb=ROUND_ROBIN cb=10/5/20/4 panic=0 timeout=2s keepalive=3/60/10 idle=30s maxreq=1 h2",
			c81: "lb=ROUND_ROBIN cb=10/5/20/4 panic=0 timeout=2s keepalive=3/60/10 idle=30s maxreq=1 h2",
		}},
		{"outlier-detection", map[string]string{c80: "lb=ROUND_ROBIN cb=max outlier=5xx:5/100,gw:3/100,local:2/100,split,1s,30s,50% panic=20 timeout=10s"}},
		{"tls-simple", map[string]string{c80: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s tls=sni:svc.example.com,root:file-root:/etc/certs/ca.pem,san:DNS=svc.example.com|URI=spiffe://cluster.local/ns/default/sa/svc"}},
		{"tls-mutual-port-disable", map[string]string{
			c80: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s tls=sni:svc.default.svc.cluster.local,cert:file-cert:/etc/certs/cert.pem~/etc/certs/key.pem,root:file-root:/etc/certs/ca.pem",
			c81: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s h2",
		}},
		// Istio's MergeTrafficPolicies: the top level for the port (its
		// port-level entry replaces it wholesale), then the subset's fields
		// one by one, then the subset's port-level entry wholesale.
		{"merge-host-subset-port", map[string]string{
			c80:  "lb=LEAST_REQUEST choices=2 cb=100/max/max/max outlier=5xx:7/100 panic=0 timeout=10s",
			c81:  "lb=RANDOM cb=max panic=0 timeout=10s h2",
			v180: "lb=ROUND_ROBIN cb=1/max/max/max panic=0 timeout=10s",
			v181: "lb=ROUND_ROBIN cb=max panic=0 timeout=10s h2",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := translatePolicy(t, policyCase(t, tt.name))
			got := map[string]string{}
			for name := range tt.want {
				got[name] = describeCluster(t, cluster(t, res, name))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHashPolicyRoutes: a request for svc goes to the cluster and hashes on
// what the DestinationRule names.
func TestHashPolicyRoutes(t *testing.T) {
	tests := []struct {
		name, cases, vs string
		want            string // hash policy of the route for svc:80
	}{
		{"header", "ring-hash-header", "", "header:x-user"},
		{"query parameter", "consistent-hash-default-ring", "", "query:user"},
		{"cookie with ttl and path", "maglev-cookie-subsets", "", "cookie:session,ttl=1m0s,path=/"},
		{"subset source ip", "maglev-cookie-subsets", "v1", "source_ip"},
		{"subset without its own hash inherits the host's", "maglev-cookie-subsets", "v2", "cookie:session,ttl=1m0s,path=/"},
		{"no consistent hash", "random", "", "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.vs != "" {
				extra = fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc, namespace: default}\n"+
					"spec: {hosts: [svc], http: [{route: [{destination: {host: svc, subset: %s}}]}]}", tt.vs)
			}
			res := Translate(snapshotOf(t, policyBase+drYAML(policyCase(t, tt.cases))+extra),
				Proxy{Type: Sidecar, Namespace: "default", Name: "client", Address: "127.0.1.1"})
			validateAll(t, res)
			rc, ok := res.Routes[httpProxyName].(*routev3.RouteConfiguration)
			if !ok {
				t.Fatal("no http_proxy route table")
			}
			out := simulate(t, rc, request{host: "svc:80", path: "/"})
			wantCluster := "cluster " + clusterName(80, tt.vs, policySvc)
			if out.action != wantCluster {
				t.Fatalf("request went to %q, want %q", out.action, wantCluster)
			}
			if got := describeHash(routeFor(rc, out)); got != tt.want {
				t.Errorf("hash policy %q, want %q", got, tt.want)
			}
		})
	}
}

func routeFor(rc *routev3.RouteConfiguration, o outcome) *routev3.Route {
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() != o.vhost {
			continue
		}
		for _, r := range vh.GetRoutes() {
			if r.GetName() == o.route {
				return r
			}
		}
	}
	return nil
}

func describeHash(r *routev3.Route) string {
	hp := r.GetRoute().GetHashPolicy()
	if len(hp) == 0 {
		return "none"
	}
	switch {
	case hp[0].GetHeader() != nil:
		return "header:" + hp[0].GetHeader().GetHeaderName()
	case hp[0].GetQueryParameter() != nil:
		return "query:" + hp[0].GetQueryParameter().GetName()
	case hp[0].GetConnectionProperties() != nil:
		return "source_ip"
	case hp[0].GetCookie() != nil:
		c := hp[0].GetCookie()
		return fmt.Sprintf("cookie:%s,ttl=%s,path=%s", c.GetName(), c.GetTtl().AsDuration(), c.GetPath())
	}
	return "unknown"
}

// describeCluster renders the policy fields of c in one line.
func describeCluster(t *testing.T, c *clusterv3.Cluster) string {
	t.Helper()
	var parts []string
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	add("lb=%s", c.GetLbPolicy())
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		add("type=ORIGINAL_DST")
	}
	if n := c.GetLeastRequestLbConfig().GetChoiceCount(); n != nil {
		add("choices=%d", n.GetValue())
	}
	if n := c.GetRingHashLbConfig().GetMinimumRingSize(); n != nil {
		add("ring=%d", n.GetValue())
	}
	if n := c.GetMaglevLbConfig().GetTableSize(); n != nil {
		add("maglev=%d", n.GetValue())
	}
	ss := c.GetRoundRobinLbConfig().GetSlowStartConfig()
	if ss == nil {
		ss = c.GetLeastRequestLbConfig().GetSlowStartConfig()
	}
	if ss != nil {
		add("slowstart=%s/%g%%/%g", ss.GetSlowStartWindow().AsDuration(), ss.GetMinWeightPercent().GetValue(), ss.GetAggression().GetDefaultValue())
	}
	if th := c.GetCircuitBreakers().GetThresholds(); len(th) == 1 {
		v := func(w interface{ GetValue() uint32 }) string {
			if w.GetValue() == 1<<32-1 {
				return "max"
			}
			return fmt.Sprint(w.GetValue())
		}
		s := strings.Join([]string{v(th[0].GetMaxConnections()), v(th[0].GetMaxPendingRequests()), v(th[0].GetMaxRequests()), v(th[0].GetMaxRetries())}, "/")
		if s == "max/max/max/max" {
			s = "max"
		}
		add("cb=%s", s)
	}
	if od := c.GetOutlierDetection(); od != nil {
		var o []string
		if od.GetConsecutive_5Xx() != nil {
			o = append(o, fmt.Sprintf("5xx:%d/%d", od.GetConsecutive_5Xx().GetValue(), od.GetEnforcingConsecutive_5Xx().GetValue()))
		}
		if od.GetConsecutiveGatewayFailure() != nil {
			o = append(o, fmt.Sprintf("gw:%d/%d", od.GetConsecutiveGatewayFailure().GetValue(), od.GetEnforcingConsecutiveGatewayFailure().GetValue()))
		}
		if od.GetConsecutiveLocalOriginFailure() != nil {
			o = append(o, fmt.Sprintf("local:%d/%d", od.GetConsecutiveLocalOriginFailure().GetValue(), od.GetEnforcingConsecutiveLocalOriginFailure().GetValue()))
		}
		if od.GetSplitExternalLocalOriginErrors() {
			o = append(o, "split")
		}
		if od.GetInterval() != nil {
			o = append(o, od.GetInterval().AsDuration().String())
		}
		if od.GetBaseEjectionTime() != nil {
			o = append(o, od.GetBaseEjectionTime().AsDuration().String())
		}
		if od.GetMaxEjectionPercent() != nil {
			o = append(o, fmt.Sprintf("%d%%", od.GetMaxEjectionPercent().GetValue()))
		}
		if od.GetEnforcingSuccessRate().GetValue() != 0 {
			o = append(o, "success-rate-enforced")
		}
		add("outlier=%s", strings.Join(o, ","))
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		add("panic=%g", p.GetValue())
	}
	if c.GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil {
		add("locality-weighted")
	}
	add("timeout=%s", c.GetConnectTimeout().AsDuration())
	if ka := c.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka != nil {
		add("keepalive=%d/%d/%d", ka.GetKeepaliveProbes().GetValue(), ka.GetKeepaliveTime().GetValue(), ka.GetKeepaliveInterval().GetValue())
	}
	if a, ok := c.GetTypedExtensionProtocolOptions()[nameHTTPProtocolOpt]; ok {
		var o httpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&o); err != nil {
			t.Fatal(err)
		}
		if d := o.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
			add("idle=%s", d.AsDuration())
		}
		if n := o.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection(); n != nil {
			add("maxreq=%d", n.GetValue())
		}
		if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			add("h2")
		}
	}
	if ts := c.GetTransportSocket(); ts != nil {
		add("tls=%s", describeTLS(t, ts.GetTypedConfig()))
	}
	return strings.Join(parts, " ")
}

// describeLocalities renders a load assignment as "LOCALITY:pPRIORITY:wWEIGHT:N" per group.
func describeLocalities(cla *endpointv3.ClusterLoadAssignment) string {
	var parts []string
	for _, g := range cla.GetEndpoints() {
		l := g.GetLocality()
		parts = append(parts, fmt.Sprintf("%s/%s/%s:p%d:w%d:%d", l.GetRegion(), l.GetZone(), l.GetSubZone(),
			g.GetPriority(), g.GetLoadBalancingWeight().GetValue(), len(g.GetLbEndpoints())))
	}
	return strings.Join(parts, " ")
}

// TestLocalityLB: which localities get which priority or weight, seen from
// the client in us-east/a/1.
func TestLocalityLB(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		// Without outlier detection Envoy would never fail over: one priority.
		{"defaults", "eu/d/1:p0:w1:1 us-east/a/1:p0:w1:1 us-east/a/2:p0:w1:1 us-east/b/1:p0:w1:1 us-west/c/1:p0:w1:1"},
		// Outlier detection turns on Istio's default failover by closeness.
		{"outlier-detection", "us-east/a/1:p0:w1:1 us-east/a/2:p1:w1:1 us-east/b/1:p2:w1:1 eu/d/1:p3:w1:1 us-west/c/1:p3:w1:1"},
		// us-east fails over to eu before any other region.
		{"locality-failover", "us-east/a/1:p0:w1:1 us-east/a/2:p1:w1:1 us-east/b/1:p2:w1:1 eu/d/1:p3:w1:1 us-west/c/1:p4:w1:1"},
		// 80% stays in us-east/a (two localities share it), 20% goes west;
		// the rest get nothing.
		{"locality-distribute", "us-east/a/1:p0:w40:1 us-east/a/2:p0:w40:1 us-west/c/1:p0:w20:1"},
		// Same network and version as the client first, then same network,
		// then the rest; then by closeness within each (Istio: failover
		// is only applied by locality when failover rules are given).
		{"locality-failover-priority", "us-east/a/1:p0:w1:1 us-east/a/2:p1:w1:1 us-west/c/1:p1:w1:1 eu/d/1:p2:w1:1 us-east/b/1:p2:w1:1"},
		{"locality-disabled", "eu/d/1:p0:w1:1 us-east/a/1:p0:w1:1 us-east/a/2:p0:w1:1 us-east/b/1:p0:w1:1 us-west/c/1:p0:w1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := translatePolicy(t, policyCase(t, tt.name))
			name := clusterName(80, "", policySvc)
			cla, ok := res.Endpoints[name].(*endpointv3.ClusterLoadAssignment)
			if !ok {
				t.Fatalf("no endpoints for %s", name)
			}
			if got := describeLocalities(cla); got != tt.want {
				t.Errorf("localities\n got %s\nwant %s", got, tt.want)
			}
			weighted := cluster(t, res, name).GetCommonLbConfig().GetLocalityWeightedLbConfig() != nil
			if want := tt.name == "locality-distribute"; weighted != want {
				t.Errorf("locality_weighted_lb_config set: %v, want %v", weighted, want)
			}
		})
	}
}

// describeTLS renders an UpstreamTlsContext as sni, client cert, root and
// SAN matchers.
func describeTLS(t *testing.T, a *anypb.Any) string {
	t.Helper()
	var tc tlsv3.UpstreamTlsContext
	if err := a.UnmarshalTo(&tc); err != nil {
		t.Fatal(err)
	}
	parts := []string{"sni:" + tc.GetSni()}
	for _, c := range tc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		parts = append(parts, "cert:"+c.GetName())
	}
	if cv := tc.GetCommonTlsContext().GetCombinedValidationContext(); cv != nil {
		parts = append(parts, "root:"+cv.GetValidationContextSdsSecretConfig().GetName())
		var sans []string
		for _, m := range cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			sans = append(sans, m.GetSanType().String()+"="+m.GetMatcher().GetExact())
		}
		if len(sans) > 0 {
			parts = append(parts, "san:"+strings.Join(sans, "|"))
		}
	}
	return strings.Join(parts, ",")
}
