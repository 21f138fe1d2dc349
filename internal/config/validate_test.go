package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// specDoc wraps spec (written flush left) in a document whose spec starts on
// line 6:
//
//	1 apiVersion, 2 kind, 3 metadata, 4 name: x, 5 spec:, 6 first spec line
func specDoc(kind, spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: " + kind + "\nmetadata:\n  name: x\nspec:\n")
	for _, line := range strings.Split(strings.TrimRight(spec, "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

func errStrings(errs []*Error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

type specCase struct {
	name string
	spec string
	want []string // Error() strings; nil means valid
}

func runSpecCases(t *testing.T, kind string, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, failed, errs := Parse("t.yaml", []byte(specDoc(kind, tc.spec)))
			if diff := cmp.Diff(tc.want, errStrings(errs)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			if tc.want == nil && len(rs) != 1 {
				t.Errorf("got %d resources, want 1", len(rs))
			}
			if tc.want != nil && (len(rs) != 0 || len(failed) != 1) {
				t.Errorf("got %d resources and failed %v, want none and the document's key", len(rs), failed)
			}
		})
	}
}

const portHTTP = "ports: [{number: 80, name: http, protocol: HTTP}]"

func TestValidateServiceEntry(t *testing.T) {
	runSpecCases(t, "ServiceEntry", []specCase{
		{name: "valid static without endpoints", spec: "hosts: [a.example.com]\n" + portHTTP + "\nresolution: STATIC"},
		{name: "valid dns", spec: "hosts: [a.example.com]\n" + portHTTP + "\nresolution: DNS"},
		{name: "valid inline endpoints", spec: "hosts: [a.example.com]\n" + portHTTP +
			"\nendpoints: [{address: 127.0.0.5, ports: {http: 8080}}]\nresolution: STATIC"},
		{name: "port zero", spec: "hosts: [a.example.com]\nports:\n- number: 0\n  name: http",
			want: []string{"t.yaml:8: ServiceEntry default/x: spec.ports[0].number: port number must be between 1 and 65535, got 0"}},
		{name: "port too large", spec: "hosts: [a.example.com]\nports:\n- number: 70000\n  name: http",
			want: []string{"t.yaml:8: ServiceEntry default/x: spec.ports[0].number: port number must be between 1 and 65535, got 70000"}},
		{name: "port name missing", spec: "hosts: [a.example.com]\nports:\n- number: 80",
			want: []string{"t.yaml:8: ServiceEntry default/x: spec.ports[0].name: port name is required"}},
		{name: "port name invalid", spec: "hosts: [a.example.com]\nports:\n- number: 80\n  name: HTTP_1",
			want: []string{`t.yaml:9: ServiceEntry default/x: spec.ports[0].name: port name "HTTP_1": "HTTP_1" is not a valid DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)`}},
		{name: "protocol unknown", spec: "hosts: [a.example.com]\nports:\n- {number: 80, name: http, protocol: HTTPX}",
			want: []string{`t.yaml:8: ServiceEntry default/x: spec.ports[0].protocol: unknown protocol "HTTPX" (want HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS or MYSQL)`}},
		{name: "port used twice", spec: "hosts: [a.example.com]\nports:\n- {number: 80, name: http}\n- {number: 80, name: http2}",
			want: []string{"t.yaml:9: ServiceEntry default/x: spec.ports[1].number: port 80 is used twice"}},
		{name: "hosts required", spec: portHTTP,
			want: []string{"t.yaml:5: ServiceEntry default/x: spec.hosts: at least one host is required"}},
		{name: "host star", spec: "hosts: ['*']\n" + portHTTP,
			want: []string{`t.yaml:6: ServiceEntry default/x: spec.hosts[0]: a ServiceEntry host cannot be "*"`}},
		{name: "host invalid", spec: "hosts: [foo_bar.com]\n" + portHTTP,
			want: []string{`t.yaml:6: ServiceEntry default/x: spec.hosts[0]: "foo_bar.com" is not a valid host: "foo_bar" is not a valid DNS label`}},
		{name: "ports required", spec: "hosts: [a.example.com]",
			want: []string{"t.yaml:5: ServiceEntry default/x: spec.ports: at least one port is required"}},
		{name: "address invalid", spec: "hosts: [a.example.com]\n" + portHTTP + "\naddresses: [10.0.0.300]",
			want: []string{`t.yaml:8: ServiceEntry default/x: spec.addresses[0]: "10.0.0.300" is not an IP address or CIDR`}},
		{name: "selector and endpoints", spec: "hosts: [a.example.com]\n" + portHTTP +
			"\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nendpoints: [{address: 127.0.0.5}]",
			want: []string{"t.yaml:9: ServiceEntry default/x: spec.workloadSelector: workloadSelector and endpoints cannot both be set"}},
		{name: "static endpoint not IP", spec: "hosts: [a.example.com]\n" + portHTTP +
			"\nresolution: STATIC\nendpoints:\n- address: a.example.com",
			want: []string{`t.yaml:10: ServiceEntry default/x: spec.endpoints[0].address: "a.example.com" is not an IP address (resolution STATIC needs IP addresses)`}},
		{name: "endpoint port not declared", spec: "hosts: [a.example.com]\n" + portHTTP +
			"\nresolution: STATIC\nendpoints:\n- address: 127.0.0.5\n  ports: {grpc: 9000}",
			want: []string{`t.yaml:11: ServiceEntry default/x: spec.endpoints[0].ports[grpc]: "grpc" is not the name of a port of this ServiceEntry`}},
		{name: "dns wildcard without endpoints", spec: "hosts: ['*.example.com']\n" + portHTTP + "\nresolution: DNS",
			want: []string{"t.yaml:6: ServiceEntry default/x: spec.hosts[0]: a wildcard host needs endpoints when resolution is DNS"}},
		{name: "endpoints with resolution NONE", spec: "hosts: [a.example.com]\n" + portHTTP + "\nendpoints: [{address: 127.0.0.5}]",
			want: []string{"t.yaml:8: ServiceEntry default/x: spec.endpoints: endpoints are not allowed with resolution NONE"}},
	})
}

func TestValidateWorkloadEntry(t *testing.T) {
	runSpecCases(t, "WorkloadEntry", []specCase{
		{name: "valid IP", spec: "address: 127.0.10.1\nports: {http: 9080}\nweight: 3"},
		{name: "valid DNS name", spec: "address: vm1.example.com"},
		{name: "address required", spec: "labels: {app: a}",
			want: []string{"t.yaml:5: WorkloadEntry default/x: spec.address: address is required"}},
		{name: "address invalid", spec: "address: 'not an ip'",
			want: []string{`t.yaml:6: WorkloadEntry default/x: spec.address: "not an ip" is not an IP address or DNS name: "not an ip" is not a valid DNS label`}},
		{name: "address bad IP", spec: "address: 127.0.10.600",
			want: []string{`t.yaml:6: WorkloadEntry default/x: spec.address: "127.0.10.600" is not an IP address or DNS name: not a valid IP address`}},
		{name: "port value zero", spec: "address: 127.0.0.1\nports:\n  http: 0",
			want: []string{"t.yaml:8: WorkloadEntry default/x: spec.ports[http]: port number must be between 1 and 65535, got 0"}},
		{name: "port value out of range", spec: "address: 127.0.0.1\nports: {http: 65536}",
			want: []string{"t.yaml:7: WorkloadEntry default/x: spec.ports[http]: port number must be between 1 and 65535, got 65536"}},
		{name: "weight too large", spec: "address: 127.0.0.1\nweight: 4000000000",
			want: []string{"t.yaml:7: WorkloadEntry default/x: spec.weight: weight must be at most 16777216, got 4000000000"}},
		{name: "label invalid", spec: "address: 127.0.0.1\nlabels: {app: -a}",
			want: []string{`t.yaml:7: WorkloadEntry default/x: spec.labels[app]: label value "-a" is not valid (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`}},
	})
}

func TestValidateWorkloadGroup(t *testing.T) {
	runSpecCases(t, "WorkloadGroup", []specCase{
		{name: "valid", spec: "template: {ports: {http: 9080}}\nprobe: {tcpSocket: {port: 9080}}"},
		{name: "template required", spec: "metadata: {labels: {app: a}}",
			want: []string{"t.yaml:5: WorkloadGroup default/x: spec.template: template is required"}},
		{name: "template with address", spec: "template: {address: 127.0.0.1}",
			want: []string{"t.yaml:6: WorkloadGroup default/x: spec.template.address: a template must not set an address; each instance has its own"}},
		{name: "probe negative period", spec: "template: {}\nprobe:\n  periodSeconds: -5\n  tcpSocket: {port: 80}",
			want: []string{"t.yaml:8: WorkloadGroup default/x: spec.probe.periodSeconds: must not be negative, got -5"}},
		{name: "probe without method", spec: "template: {}\nprobe:\n  periodSeconds: 5",
			want: []string{"t.yaml:7: WorkloadGroup default/x: spec.probe: one of httpGet, tcpSocket, grpc or exec is required"}},
		{name: "probe http port zero", spec: "template: {}\nprobe:\n  httpGet: {path: /ready}",
			want: []string{"t.yaml:8: WorkloadGroup default/x: spec.probe.httpGet.port: port number must be between 1 and 65535, got 0"}},
		{name: "probe two methods", spec: "template: {}\nprobe:\n  httpGet: {port: 80}\n  tcpSocket: {port: 80}",
			want: []string{"t.yaml:9: WorkloadGroup default/x: spec.probe.tcpSocket: only one of httpGet, tcpSocket, exec, grpc may be set, and httpGet is already set"}},
	})
}

func TestValidateVirtualService(t *testing.T) {
	runSpecCases(t, "VirtualService", []specCase{
		{name: "valid single destination without weight", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}"},
		{name: "valid redirect", spec: "hosts: [reviews]\nhttp:\n- redirect: {uri: /v2}"},
		{name: "valid gateway star", spec: "hosts: ['*']\ngateways: [istio-system/gw]\nhttp:\n- directResponse: {status: 404}"},
		{name: "weights sum", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n    weight: 40\n  - destination: {host: reviews, subset: v3}\n    weight: 50",
			want: []string{"t.yaml:12: VirtualService default/x: spec.http[0].route[1].weight: weights sum to 90, must sum to 100"}},
		{name: "weights omitted with two destinations", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n  - destination: {host: reviews, subset: v3}",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].route[1].weight: weights sum to 0, must sum to 100"}},
		{name: "weight out of range", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: 120",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].route[0].weight: weight must be between 0 and 100, got 120"}},
		{name: "no hosts is a delegate", spec: "http:\n- route:\n  - destination: {host: reviews}"},
		{name: "hosts required without http", spec: "tcp:\n- route:\n  - destination: {host: reviews}",
			want: []string{"t.yaml:5: VirtualService default/x: spec.hosts: at least one host is required (a VirtualService without hosts is a delegate and needs http routes)"}},
		{name: "star host for mesh", spec: "hosts: ['*']\nhttp:\n- route:\n  - destination: {host: reviews}",
			want: []string{`t.yaml:6: VirtualService default/x: spec.hosts[0]: host "*" is not allowed for a VirtualService that applies to the mesh (set gateways)`}},
		{name: "no routes at all", spec: "hosts: [reviews]",
			want: []string{"t.yaml:5: VirtualService default/x: spec: at least one of http, tcp or tls routes is required"}},
		{name: "http without action", spec: "hosts: [reviews]\nhttp:\n- timeout: 1s",
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0]: one of route, redirect, directResponse or delegate is required"}},
		{name: "route and redirect", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  redirect: {uri: /x}",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].redirect: route and redirect cannot both be set"}},
		{name: "destination host required", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {subset: v1}",
			want: []string{"t.yaml:9: VirtualService default/x: spec.http[0].route[0].destination.host: destination host is required"}},
		{name: "destination port zero", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination:\n      host: reviews\n      port: {number: 0}",
			want: []string{"t.yaml:11: VirtualService default/x: spec.http[0].route[0].destination.port.number: port number must be between 1 and 65535, got 0"}},
		{name: "regex does not compile", spec: "hosts: [reviews]\nhttp:\n- match:\n  - uri: {regex: 'a(b'}\n  route:\n  - destination: {host: reviews}",
			want: []string{"t.yaml:9: VirtualService default/x: spec.http[0].match[0].uri.regex: invalid regular expression: error parsing regexp: missing closing ): `a(b`"}},
		{name: "header regex does not compile", spec: "hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      end-user: {regex: '*'}\n  route:\n  - destination: {host: reviews}",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].match[0].headers[end-user].regex: invalid regular expression: error parsing regexp: missing argument to repetition operator: `*`"}},
		{name: "negative timeout", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  timeout: -1s",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].timeout: must not be negative, got -1s"}},
		{name: "negative per-try timeout", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  retries: {attempts: 2, perTryTimeout: -500ms}",
			want: []string{"t.yaml:10: VirtualService default/x: spec.http[0].retries.perTryTimeout: must not be negative, got -500ms"}},
		{name: "negative attempts", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  retries:\n    attempts: -1",
			want: []string{"t.yaml:11: VirtualService default/x: spec.http[0].retries.attempts: must not be negative, got -1"}},
		{name: "direct response status", spec: "hosts: [reviews]\nhttp:\n- directResponse: {status: 99}",
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].directResponse.status: status must be between 200 and 599, got 99"}},
		{name: "tcp without route", spec: "hosts: [reviews]\ntcp:\n- match: [{port: 27017}]",
			want: []string{"t.yaml:8: VirtualService default/x: spec.tcp[0].route: at least one route destination is required"}},
		{name: "tls without match", spec: "hosts: [reviews]\ntls:\n- route:\n  - destination: {host: reviews}",
			want: []string{"t.yaml:8: VirtualService default/x: spec.tls[0].match: a TLS route needs at least one match"}},
	})
}

func TestValidateDestinationRule(t *testing.T) {
	runSpecCases(t, "DestinationRule", []specCase{
		{name: "valid", spec: "host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}"},
		{name: "host required", spec: "subsets:\n- {name: v1, labels: {version: v1}}",
			want: []string{"t.yaml:5: DestinationRule default/x: spec.host: host is required"}},
		{name: "subset name empty", spec: "host: reviews\nsubsets:\n- labels: {version: v1}",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.subsets[0].name: subset name is required"}},
		{name: "subset name duplicate", spec: "host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v1, labels: {version: v2}}",
			want: []string{`t.yaml:9: DestinationRule default/x: spec.subsets[1].name: subset name "v1" is already used by subsets[0]`}},
		{name: "subset labels empty", spec: "host: reviews\nsubsets:\n- name: v1",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.subsets[0].labels: subset labels are required"}},
		{name: "connect timeout zero", spec: "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {connectTimeout: 0s}",
			want: []string{"t.yaml:9: DestinationRule default/x: spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be positive, got 0s"}},
	})
}

func TestValidateGateway(t *testing.T) {
	runSpecCases(t, "Gateway", []specCase{
		{name: "valid", spec: "servers:\n- port: {number: 8080, name: http, protocol: HTTP}\n  hosts: ['*']"},
		{name: "servers required", spec: "selector: {istio: ingressgateway}",
			want: []string{"t.yaml:5: Gateway default/x: spec.servers: at least one server is required"}},
		{name: "port required", spec: "servers:\n- hosts: ['*']",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].port: port is required"}},
		{name: "port zero", spec: "servers:\n- port: {number: 0, protocol: HTTP}\n  hosts: ['*']",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].port.number: port number must be between 1 and 65535, got 0"}},
		{name: "protocol required", spec: "servers:\n- port: {number: 80}\n  hosts: ['*']",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].port.protocol: protocol is required (HTTP, HTTPS, HTTP2, GRPC, TCP, TLS, ...)"}},
		{name: "hosts required", spec: "servers:\n- port: {number: 80, protocol: HTTP}",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].hosts: at least one host is required"}},
		{name: "host namespace invalid", spec: "servers:\n- port: {number: 80, protocol: HTTP}\n  hosts: ['Bad/*.example.com']",
			want: []string{`t.yaml:8: Gateway default/x: spec.servers[0].hosts[0]: "Bad/*.example.com": namespace must be "*", ".", "~" or a namespace name: "Bad" is not a valid DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)`}},
		{name: "https without tls", spec: "servers:\n- port: {number: 443, protocol: HTTPS}\n  hosts: ['*']",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].tls: a server with protocol HTTPS needs tls settings"}},
		{name: "tls without tls settings", spec: "servers:\n- port: {number: 443, protocol: TLS}\n  hosts: ['*']",
			want: []string{"t.yaml:7: Gateway default/x: spec.servers[0].tls: a server with protocol TLS needs tls settings"}},
		{name: "https with credential", spec: "servers:\n- port: {number: 443, protocol: HTTPS}\n  hosts: ['*']\n  tls: {mode: SIMPLE, credentialName: gw-cert}"},
		{name: "simple tls without certificate", spec: "servers:\n- port: {number: 443, protocol: HTTPS}\n  hosts: ['*']\n  tls: {mode: SIMPLE}",
			want: []string{"t.yaml:9: Gateway default/x: spec.servers[0].tls: mode SIMPLE needs credentialName, or serverCertificate and privateKey"}},
	})
}

func TestValidateSidecar(t *testing.T) {
	runSpecCases(t, "Sidecar", []specCase{
		{name: "valid", spec: "ingress:\n- port: {number: 9080, protocol: HTTP}\n  defaultEndpoint: 127.0.20.3:9080\negress:\n- port: {number: 9080}\n  bind: 127.0.30.3\n  hosts: ['./ratings']\n- hosts: ['*/*']"},
		{name: "valid wildcard and unix endpoints", spec: "ingress:\n- port: {number: 80}\n  defaultEndpoint: 0.0.0.0:8080\n- port: {number: 81}\n  defaultEndpoint: unix:///var/run/app.sock"},
		{name: "ingress port required", spec: "ingress:\n- defaultEndpoint: 127.0.0.1:8080",
			want: []string{"t.yaml:7: Sidecar default/x: spec.ingress[0].port: port is required"}},
		{name: "ingress port zero", spec: "ingress:\n- port: {number: 0}\n  defaultEndpoint: 127.0.0.1:8080",
			want: []string{"t.yaml:7: Sidecar default/x: spec.ingress[0].port.number: port number must be between 1 and 65535, got 0"}},
		{name: "default endpoint name", spec: "ingress:\n- port: {number: 80}\n  defaultEndpoint: localhost:8080",
			want: []string{`t.yaml:8: Sidecar default/x: spec.ingress[0].defaultEndpoint: "localhost:8080" must be IP:port or unix://path`}},
		{name: "default endpoint not loopback", spec: "ingress:\n- port: {number: 80}\n  defaultEndpoint: 10.0.0.1:8080",
			want: []string{`t.yaml:8: Sidecar default/x: spec.ingress[0].defaultEndpoint: "10.0.0.1:8080": the IP must be a loopback address (127.0.0.0/8 or ::1) or 0.0.0.0`}},
		{name: "default endpoint port zero", spec: "ingress:\n- port: {number: 80}\n  defaultEndpoint: 127.0.0.1:0",
			want: []string{"t.yaml:8: Sidecar default/x: spec.ingress[0].defaultEndpoint: port number must be between 1 and 65535, got 0"}},
		{name: "default endpoint missing", spec: "ingress:\n- port: {number: 80}",
			want: []string{`t.yaml:7: Sidecar default/x: spec.ingress[0].defaultEndpoint: defaultEndpoint is required (for example "127.0.20.1:9080" or "unix:///var/run/app.sock")`}},
		{name: "egress host without namespace", spec: "egress:\n- hosts: [ratings.default.svc.cluster.local]",
			want: []string{`t.yaml:7: Sidecar default/x: spec.egress[0].hosts[0]: "ratings.default.svc.cluster.local" must have the form namespace/dnsName (for example "./reviews.default.svc.cluster.local" or "*/*")`}},
		{name: "egress bind invalid", spec: "egress:\n- port: {number: 80}\n  bind: 127.0.0.300\n  hosts: ['*/*']",
			want: []string{`t.yaml:8: Sidecar default/x: spec.egress[0].bind: bind "127.0.0.300" must be an IP address or unix:// path`}},
		{name: "portless egress not last", spec: "egress:\n- hosts: ['*/*']\n- port: {number: 80}\n  hosts: ['./a']",
			want: []string{"t.yaml:7: Sidecar default/x: spec.egress[0].port: only the last egress listener may omit the port"}},
	})
}

func TestSchemaErrors(t *testing.T) {
	runSpecCases(t, "VirtualService", []specCase{
		{name: "unknown field with suggestion", spec: "hosts: [reviews]\nhtp: []",
			want: []string{`t.yaml:7: VirtualService default/x: spec.htp: unknown field "htp" (did you mean "http"?)`}},
		{name: "proto name accepted", spec: "hosts: [reviews]\nexport_to: ['.']\nhttp:\n- direct_response: {status: 200}"},
		{name: "list expected", spec: "hosts: reviews",
			want: []string{`t.yaml:6: VirtualService default/x: spec.hosts: expected a list, got the string "reviews"`}},
		{name: "string expected", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: 42}",
			want: []string{`t.yaml:9: VirtualService default/x: spec.http[0].route[0].destination.host: expected a string, got the number 42 (quote it: "42")`}},
		{name: "number expected", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: half",
			want: []string{`t.yaml:10: VirtualService default/x: spec.http[0].route[0].weight: expected a whole number, got the string "half"`}},
		{name: "negative unsigned", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, port: {number: -1}}",
			want: []string{`t.yaml:9: VirtualService default/x: spec.http[0].route[0].destination.port.number: must not be negative, got -1`}},
		{name: "bad duration", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  timeout: 5 seconds",
			want: []string{`t.yaml:10: VirtualService default/x: spec.http[0].timeout: expected a duration such as "5s" or "100ms", got "5 seconds"`}},
		{name: "field set twice", spec: "hosts: [reviews]\nhosts: [ratings]",
			want: []string{`t.yaml:7: VirtualService default/x: spec.hosts: field is set twice (first on line 6)`}},
		{name: "oneof set twice", spec: "hosts: [reviews]\nhttp:\n- match:\n  - uri: {exact: /a, prefix: /b}\n  route:\n  - destination: {host: reviews}",
			want: []string{`t.yaml:9: VirtualService default/x: spec.http[0].match[0].uri.prefix: only one of exact, prefix, regex may be set, and exact is already set`}},
		{name: "wrapper as scalar", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  mirrorPercent: 5\n  retries: {attempts: 1, retryRemoteLocalities: true}"},
		{name: "wrapper wrong type", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  retries: {retryRemoteLocalities: yes please}",
			want: []string{`t.yaml:10: VirtualService default/x: spec.http[0].retries.retryRemoteLocalities: expected true or false, got the string "yes please"`}},
		{name: "mapping expected", spec: "hosts: [reviews]\nhttp:\n- route:\n  - destination: reviews",
			want: []string{`t.yaml:9: VirtualService default/x: spec.http[0].route[0].destination: expected a mapping (Destination), got the string "reviews"`}},
		{name: "empty list item", spec: "hosts: [reviews]\nhttp:\n-\n- directResponse: {status: 200}",
			want: []string{`t.yaml:8: VirtualService default/x: spec.http[0]: list item must not be empty`}},
	})
	runSpecCases(t, "DestinationRule", []specCase{
		{name: "enum by name", spec: "host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}"},
		{name: "enum by number", spec: "host: reviews\ntrafficPolicy: {loadBalancer: {simple: 2}}"},
		{name: "enum unknown", spec: "host: reviews\ntrafficPolicy: {loadBalancer: {simple: FASTEST}}",
			want: []string{`t.yaml:7: DestinationRule default/x: spec.trafficPolicy.loadBalancer.simple: "FASTEST" is not a known value (want one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST)`}},
	})
}
