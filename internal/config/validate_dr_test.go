package config

import "testing"

func TestValidateDestinationRulePolicy(t *testing.T) {
	const top = "host: reviews\ntrafficPolicy:\n"
	runSpecCases(t, "DestinationRule", []specCase{
		{name: "every translated policy", spec: top + `  loadBalancer:
    consistentHash: {httpCookie: {name: s, ttl: 10s}, maglev: {tableSize: 65537}}
    localityLbSetting: {failover: [{from: us-east, to: eu}], failoverPriority: [topology.istio.io/network]}
  outlierDetection: {consecutiveLocalOriginFailures: 2, splitExternalLocalOriginErrors: true}
  tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}
  portLevelSettings:
  - port: {number: 81}
    loadBalancer: {simple: LEAST_REQUEST, warmup: {duration: 30s, minimumPercent: 10, aggression: 2}}`},
		{name: "maglev table size not prime", spec: top + "  loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: table size must be a prime number, got 65536"}},
		{name: "cookie without name", spec: top + "  loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: cookie name is required"}},
		{name: "distribute with failover", spec: top + "  loadBalancer:\n    localityLbSetting:\n      distribute: [{from: us-east/*, to: {us-east/*: 100}}]\n      failover: [{from: us-east, to: eu}]",
			want: []string{"t.yaml:9: DestinationRule default/x: spec.trafficPolicy.loadBalancer.localityLbSetting: distribute cannot be combined with failover or failoverPriority"}},
		{name: "distribute weights not 100", spec: top + "  loadBalancer:\n    localityLbSetting:\n      distribute: [{from: us-east/*, to: {us-east/*: 60, eu/*: 30}}]",
			want: []string{"t.yaml:10: DestinationRule default/x: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights add up to 90, must add up to 100"}},
		{name: "failover to the same region", spec: top + "  loadBalancer:\n    localityLbSetting:\n      failover: [{from: eu, to: eu}]",
			want: []string{`t.yaml:10: DestinationRule default/x: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].to: failover must go to another region than "eu"`}},
		{name: "local origin failures without split", spec: top + "  outlierDetection: {consecutiveLocalOriginFailures: 2}",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: needs splitExternalLocalOriginErrors: true (Envoy only counts local origin failures separately then)"}},
		{name: "mutual without key", spec: top + "  tls: {mode: MUTUAL, clientCertificate: /c.pem}",
			want: []string{"t.yaml:8: DestinationRule default/x: spec.trafficPolicy.tls: mode MUTUAL needs clientCertificate and privateKey (or credentialName)"}},
		{name: "istio mutual with files", spec: "host: reviews\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: /ca.pem}}",
			want: []string{"t.yaml:10: DestinationRule default/x: spec.subsets[0].trafficPolicy.tls: mode ISTIO_MUTUAL uses the workload's mesh certificate; clientCertificate, privateKey, caCertificates and credentialName must be empty"}},
		{name: "port-level warmup aggression", spec: top + "  portLevelSettings:\n  - port: {number: 80}\n    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 10s, aggression: 0.5}}",
			want: []string{"t.yaml:10: DestinationRule default/x: spec.trafficPolicy.portLevelSettings[0].loadBalancer.warmup.aggression: must be at least 1, got 0.5"}},
	})
}
