package config

import "testing"

// TestValidateVirtualServiceTraffic covers issue 3's VirtualService fields:
// delegates, fault, retries, mirrors and rewrites.
func TestValidateVirtualServiceTraffic(t *testing.T) {
	route := "route: [{destination: {host: web}}]"
	runSpecCases(t, "VirtualService", []specCase{
		{name: "valid delegate (no hosts)", spec: "http:\n- " + route},
		{name: "valid root with delegate", spec: "hosts: [web]\nhttp:\n- match: [{uri: {prefix: /api}}]\n  delegate: {name: api, namespace: team}"},
		{name: "delegate without http", spec: "tcp:\n- " + route,
			want: []string{"t.yaml:5: VirtualService default/x: spec.hosts: at least one host is required (a VirtualService without hosts is a delegate and needs http routes)"}},
		{name: "delegate with gateways", spec: "gateways: [gw]\nhttp:\n- " + route,
			want: []string{"t.yaml:6: VirtualService default/x: spec.gateways: a delegate VirtualService (no hosts) must not set gateways; its root's apply"}},
		{name: "nested delegate", spec: "http:\n- delegate: {name: other}",
			want: []string{"t.yaml:7: VirtualService default/x: spec.http[0].delegate: a delegate VirtualService cannot delegate again"}},
		{name: "delegate with route", spec: "hosts: [web]\nhttp:\n- delegate: {name: api}\n  " + route,
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].delegate: delegate cannot be combined with route, redirect or directResponse"}},
		{name: "delegate name invalid", spec: "hosts: [web]\nhttp:\n- delegate: {name: Bad_Name}",
			want: []string{`t.yaml:8: VirtualService default/x: spec.http[0].delegate.name: delegate name "Bad_Name" is not a valid DNS name (lower-case letters, digits, '-' and '.')`}},
		{name: "valid fault", spec: "hosts: [web]\nhttp:\n- fault: {delay: {fixedDelay: 1s, percentage: {value: 10}}, abort: {grpcStatus: UNAVAILABLE}}\n  " + route},
		{name: "fault without delay or abort", spec: "hosts: [web]\nhttp:\n- fault: {}\n  " + route,
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].fault: a fault needs delay or abort"}},
		{name: "fault unknown grpc status", spec: "hosts: [web]\nhttp:\n- fault: {abort: {grpcStatus: NOPE}}\n  " + route,
			want: []string{`t.yaml:8: VirtualService default/x: spec.http[0].fault.abort.grpcStatus: "NOPE" is not a gRPC status name (for example UNAVAILABLE)`}},
		{name: "fault delay without fixedDelay", spec: "hosts: [web]\nhttp:\n- fault: {delay: {percentage: {value: 10}}}\n  " + route,
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].fault.delay.fixedDelay: fixedDelay is required (exponentialDelay is not supported)"}},
		{name: "fault abort percentage too large", spec: "hosts: [web]\nhttp:\n- fault: {abort: {httpStatus: 503, percentage: {value: 101}}}\n  " + route,
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].fault.abort.percentage.value: percentage must be between 0 and 100, got 101"}},
		{name: "valid retries with gRPC codes", spec: "hosts: [web]\nhttp:\n- retries: {attempts: 3, retryOn: \"5xx,unavailable,cancelled,resource-exhausted,503\", backoff: 0.1s}\n  " + route},
		{name: "unknown retry policy", spec: "hosts: [web]\nhttp:\n- retries: {attempts: 3, retryOn: \"5xx,sometimes\"}\n  " + route,
			want: []string{`t.yaml:8: VirtualService default/x: spec.http[0].retries.retryOn: "sometimes" is not a retry policy (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or a status code)`}},
		{name: "mirror and mirrors", spec: "hosts: [web]\nhttp:\n- mirror: {host: shadow}\n  mirrors: [{destination: {host: shadow2}}]\n  " + route,
			want: []string{"t.yaml:9: VirtualService default/x: spec.http[0].mirrors: mirror and mirrors cannot both be set"}},
		{name: "regex rewrite without match", spec: "hosts: [web]\nhttp:\n- rewrite: {uriRegexRewrite: {rewrite: /x}}\n  " + route,
			want: []string{"t.yaml:8: VirtualService default/x: spec.http[0].rewrite.uriRegexRewrite.match: match is required"}},
		{name: "valid redirect derivePort", spec: "hosts: [web]\nhttp:\n- redirect: {derivePort: FROM_REQUEST_PORT, scheme: https}"},
		{name: "valid tcp with subnets and tls by sni", spec: "hosts: [db.example.com]\ntcp:\n- match: [{port: 3306, destinationSubnets: [10.0.0.0/8]}]\n  " + route +
			"\ntls:\n- match: [{sniHosts: [db.example.com]}]\n  " + route},
	})
}
