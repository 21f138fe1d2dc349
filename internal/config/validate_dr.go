package config

import (
	"fmt"
	"math/big"
	"slices"

	networkingv1 "istio.io/api/networking/v1"
)

// Envoy's limit on ring_hash_lb_config.minimum_ring_size.
const maxRingSize = 8 << 20

// policyLevel checks the DestinationRule fields the translator turns into
// Envoy cluster and route settings (issue 3): load balancer, consistent
// hash, locality, warmup, tls and outlier detection interplay. It runs on
// the top level, each subset and each port-level entry.
func (c *checker) policyLevel(path string, lb *networkingv1.LoadBalancerSettings, od *networkingv1.OutlierDetection,
	tls *networkingv1.ClientTLSSettings) {
	c.loadBalancer(path+".loadBalancer", lb)
	c.clientTLS(path+".tls", tls)
	if od != nil && od.GetConsecutiveLocalOriginFailures().GetValue() > 0 && !od.GetSplitExternalLocalOriginErrors() {
		c.add(path+".outlierDetection.consecutiveLocalOriginFailures",
			"needs splitExternalLocalOriginErrors: true (Envoy only counts local origin failures separately then)")
	}
}

func (c *checker) loadBalancer(path string, lb *networkingv1.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cpath := path + ".consistentHash"
		switch ch.GetHashKey().(type) {
		case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			c.headerName(cpath+".httpHeaderName", ch.GetHttpHeaderName())
		case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			if ch.GetHttpCookie().GetName() == "" {
				c.add(cpath+".httpCookie.name", "cookie name is required")
			}
			c.nonNegativeDuration(cpath+".httpCookie.ttl", ch.GetHttpCookie().GetTtl())
		case *networkingv1.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
			if ch.GetHttpQueryParameterName() == "" {
				c.add(cpath+".httpQueryParameterName", "query parameter name is required")
			}
		case nil:
			c.add(cpath, "one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is required")
		}
		if n := ch.GetMaglev().GetTableSize(); n != 0 && !big.NewInt(0).SetUint64(n).ProbablyPrime(20) {
			c.add(cpath+".maglev.tableSize", "table size must be a prime number, got %d", n)
		}
		for _, f := range []struct {
			name string
			v    uint64
		}{{"ringHash.minimumRingSize", ch.GetRingHash().GetMinimumRingSize()}, {"minimumRingSize", ch.GetMinimumRingSize()}} {
			if f.v > maxRingSize {
				c.add(cpath+"."+f.name, "must be at most %d, got %d", maxRingSize, f.v)
			}
		}
	}
	if w := lb.GetWarmup(); w != nil {
		if d := w.GetDuration(); d == nil || d.AsDuration() <= 0 {
			c.add(path+".warmup.duration", "duration must be positive")
		}
		if v := w.GetMinimumPercent(); v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
			c.add(path+".warmup.minimumPercent", "must be between 0 and 100, got %g", v.GetValue())
		}
		if v := w.GetAggression(); v != nil && v.GetValue() < 1 {
			c.add(path+".warmup.aggression", "must be at least 1, got %g", v.GetValue())
		}
	}
	c.nonNegativeDuration(path+".warmupDurationSecs", lb.GetWarmupDurationSecs())
	c.localityLB(path+".localityLbSetting", lb.GetLocalityLbSetting())
}

// localityLB applies Istio's rules: distribute and failover exclude each
// other, each distribute "to" adds up to 100, failover goes between
// different regions.
func (c *checker) localityLB(path string, l *networkingv1.LocalityLoadBalancerSetting) {
	if l == nil {
		return
	}
	if len(l.GetDistribute()) > 0 && (len(l.GetFailover()) > 0 || len(l.GetFailoverPriority()) > 0) {
		c.add(path, "distribute cannot be combined with failover or failoverPriority")
	}
	for i, d := range l.GetDistribute() {
		dpath := fmt.Sprintf("%s.distribute[%d]", path, i)
		if d.GetFrom() == "" {
			c.add(dpath+".from", "from is required")
		}
		var sum uint64
		for _, k := range sortedKeys(d.GetTo()) {
			sum += uint64(d.GetTo()[k])
		}
		if sum != 100 {
			c.add(dpath+".to", "weights add up to %d, must add up to 100", sum)
		}
	}
	for i, f := range l.GetFailover() {
		fpath := fmt.Sprintf("%s.failover[%d]", path, i)
		switch {
		case f.GetFrom() == "" || f.GetTo() == "":
			c.add(fpath, "from and to are required")
		case f.GetFrom() == f.GetTo():
			c.add(fpath+".to", "failover must go to another region than %q", clip(f.GetFrom()))
		}
	}
	for i, p := range l.GetFailoverPriority() {
		if p == "" {
			c.add(fmt.Sprintf("%s.failoverPriority[%d]", path, i), "label must not be empty")
		}
	}
}

// clientTLS checks the modes the translator emits: MUTUAL needs a client
// certificate and key (or credentialName); ISTIO_MUTUAL takes its material
// from the mesh and must not name files.
func (c *checker) clientTLS(path string, t *networkingv1.ClientTLSSettings) {
	if t == nil {
		return
	}
	files := t.GetClientCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != ""
	switch t.GetMode() {
	case networkingv1.ClientTLSSettings_MUTUAL:
		if t.GetCredentialName() == "" && (t.GetClientCertificate() == "" || t.GetPrivateKey() == "") {
			c.add(path, "mode MUTUAL needs clientCertificate and privateKey (or credentialName)")
		}
	case networkingv1.ClientTLSSettings_ISTIO_MUTUAL:
		if files || t.GetCredentialName() != "" {
			c.add(path, "mode ISTIO_MUTUAL uses the workload's mesh certificate; clientCertificate, privateKey, caCertificates and credentialName must be empty")
		}
	case networkingv1.ClientTLSSettings_DISABLE:
		if files {
			c.add(path, "mode DISABLE must not name certificate files")
		}
	}
	if slices.Contains(t.GetSubjectAltNames(), "") {
		c.add(path+".subjectAltNames", "names must not be empty")
	}
}
