package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
)

// ---- DestinationRule ----

func (c *checker) destinationRule(dr *networkingv1.DestinationRule) {
	if dr.GetHost() == "" {
		c.add("spec.host", "host is required")
	} else if msg := checkHost(dr.GetHost(), true); msg != "" {
		c.add("spec.host", "%s", msg)
	}
	c.trafficPolicy("spec.trafficPolicy", dr.GetTrafficPolicy())
	names := make(map[string]int)
	for i, s := range dr.GetSubsets() {
		path := fmt.Sprintf("spec.subsets[%d]", i)
		switch first, dup := names[s.GetName()]; {
		case s.GetName() == "":
			c.add(path+".name", "subset name is required")
		case dup:
			c.add(path+".name", "subset name %q is already used by subsets[%d]", clip(s.GetName()), first)
		default:
			if msg := checkDNSLabel(s.GetName()); msg != "" {
				c.add(path+".name", "subset name %s", msg)
			}
			names[s.GetName()] = i
		}
		if len(s.GetLabels()) == 0 {
			c.add(path+".labels", "subset labels are required")
		}
		c.labels(path+".labels", s.GetLabels())
		c.trafficPolicy(path+".trafficPolicy", s.GetTrafficPolicy())
	}
	if ws := dr.GetWorkloadSelector(); ws != nil {
		c.labels("spec.workloadSelector.matchLabels", ws.GetMatchLabels())
	}
	c.exportTo("spec.exportTo", dr.GetExportTo())
}

func (c *checker) trafficPolicy(path string, tp *networkingv1.TrafficPolicy) {
	if tp == nil {
		return
	}
	c.connectionPool(path+".connectionPool", tp.GetConnectionPool())
	c.outlierDetection(path+".outlierDetection", tp.GetOutlierDetection())
	c.policyLevel(path, tp.GetLoadBalancer(), tp.GetOutlierDetection(), tp.GetTls()) // validate_dr.go
	for i, pl := range tp.GetPortLevelSettings() {
		ppath := fmt.Sprintf("%s.portLevelSettings[%d]", path, i)
		if pl.GetPort() == nil {
			c.add(ppath+".port", "port is required")
		} else {
			c.port(ppath+".port.number", pl.GetPort().GetNumber())
		}
		c.connectionPool(ppath+".connectionPool", pl.GetConnectionPool())
		c.outlierDetection(ppath+".outlierDetection", pl.GetOutlierDetection())
		c.policyLevel(ppath, pl.GetLoadBalancer(), pl.GetOutlierDetection(), pl.GetTls())
	}
}

func (c *checker) connectionPool(path string, cp *networkingv1.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if t := cp.GetTcp(); t != nil {
		if t.GetMaxConnections() < 0 {
			c.add(path+".tcp.maxConnections", "must not be negative, got %d", t.GetMaxConnections())
		}
		if d := t.GetConnectTimeout(); d != nil && d.AsDuration() <= 0 {
			c.add(path+".tcp.connectTimeout", "must be positive, got %s", d.AsDuration())
		}
		c.nonNegativeDuration(path+".tcp.idleTimeout", t.GetIdleTimeout())
		c.nonNegativeDuration(path+".tcp.maxConnectionDuration", t.GetMaxConnectionDuration())
	}
	if h := cp.GetHttp(); h != nil {
		for _, f := range []struct {
			name string
			v    int32
		}{
			{"http1MaxPendingRequests", h.GetHttp1MaxPendingRequests()}, {"http2MaxRequests", h.GetHttp2MaxRequests()},
			{"maxRequestsPerConnection", h.GetMaxRequestsPerConnection()}, {"maxRetries", h.GetMaxRetries()},
			{"maxConcurrentStreams", h.GetMaxConcurrentStreams()},
		} {
			if f.v < 0 {
				c.add(path+".http."+f.name, "must not be negative, got %d", f.v)
			}
		}
		c.nonNegativeDuration(path+".http.idleTimeout", h.GetIdleTimeout())
	}
}

func (c *checker) outlierDetection(path string, od *networkingv1.OutlierDetection) {
	if od == nil {
		return
	}
	if v := od.GetMaxEjectionPercent(); v < 0 || v > 100 {
		c.add(path+".maxEjectionPercent", "must be between 0 and 100, got %d", v)
	}
	if v := od.GetMinHealthPercent(); v < 0 || v > 100 {
		c.add(path+".minHealthPercent", "must be between 0 and 100, got %d", v)
	}
	if od.GetConsecutiveErrors() < 0 {
		c.add(path+".consecutiveErrors", "must not be negative, got %d", od.GetConsecutiveErrors())
	}
	if d := od.GetInterval(); d != nil && d.AsDuration() <= 0 {
		c.add(path+".interval", "must be positive, got %s", d.AsDuration())
	}
	if d := od.GetBaseEjectionTime(); d != nil && d.AsDuration() <= 0 {
		c.add(path+".baseEjectionTime", "must be positive, got %s", d.AsDuration())
	}
}

// ---- Gateway ----

func (c *checker) gateway(gw *networkingv1.Gateway) {
	if len(gw.GetServers()) == 0 {
		c.add("spec.servers", "at least one server is required")
	}
	c.labels("spec.selector", gw.GetSelector())
	names := make(map[string]int)
	for i, s := range gw.GetServers() {
		path := fmt.Sprintf("spec.servers[%d]", i)
		p := s.GetPort()
		if p == nil {
			c.add(path+".port", "port is required")
		} else {
			c.port(path+".port.number", p.GetNumber())
			c.optionalPort(path+".port.targetPort", p.GetTargetPort())
			c.protocol(path+".port.protocol", p.GetProtocol(), true)
			c.portName(path+".port.name", p.GetName(), false)
		}
		if len(s.GetHosts()) == 0 {
			c.add(path+".hosts", "at least one host is required")
		}
		for j, h := range s.GetHosts() {
			if msg := checkNamespacedHost(h, false); msg != "" {
				c.add(fmt.Sprintf("%s.hosts[%d]", path, j), "%s", msg)
			}
		}
		if b := s.GetBind(); b != "" && !isIP(b) && !strings.HasPrefix(b, "unix://") {
			c.add(path+".bind", "bind %q must be an IP address or unix:// path", clip(b))
		}
		if n := s.GetName(); n != "" {
			if first, dup := names[n]; dup {
				c.add(path+".name", "server name %q is already used by servers[%d]", clip(n), first)
			} else {
				names[n] = i
			}
		}
		c.serverTLS(path, p, s.GetTls())
	}
}

func (c *checker) serverTLS(path string, p *networkingv1.Port, tls *networkingv1.ServerTLSSettings) {
	proto := strings.ToUpper(p.GetProtocol())
	if tls == nil {
		if proto == "HTTPS" || proto == "TLS" {
			c.add(path+".tls", "a server with protocol %s needs tls settings", proto)
		}
		return
	}
	if tls.GetHttpsRedirect() {
		return
	}
	switch tls.GetMode() {
	case networkingv1.ServerTLSSettings_SIMPLE, networkingv1.ServerTLSSettings_MUTUAL:
		if tls.GetCredentialName() == "" && len(tls.GetCredentialNames()) == 0 && len(tls.GetTlsCertificates()) == 0 &&
			(tls.GetServerCertificate() == "" || tls.GetPrivateKey() == "") {
			c.add(path+".tls", "mode %s needs credentialName, or serverCertificate and privateKey", tls.GetMode())
		}
	}
}

// checkNamespacedHost checks "host" or "namespace/host" as used by Gateway
// servers (namespace optional) and Sidecar egress (namespace required).
func checkNamespacedHost(h string, requireNamespace bool) string {
	ns, host, found := strings.Cut(h, "/")
	if !found {
		if requireNamespace {
			return fmt.Sprintf("%q must have the form namespace/dnsName (for example \"./reviews.default.svc.cluster.local\" or \"*/*\")", clip(h))
		}
		ns, host = "", ns
	}
	if found {
		switch ns {
		case "*", ".", "~":
		default:
			if msg := checkDNSLabel(ns); msg != "" {
				return fmt.Sprintf("%q: namespace must be \"*\", \".\", \"~\" or a namespace name: %s", clip(h), msg)
			}
		}
	}
	if msg := checkHost(host, true); msg != "" {
		return fmt.Sprintf("%q: %s", clip(h), msg)
	}
	return ""
}

// ---- Sidecar ----

func (c *checker) sidecar(sc *networkingv1.Sidecar) {
	if ws := sc.GetWorkloadSelector(); ws != nil {
		c.labels("spec.workloadSelector.labels", ws.GetLabels())
	}
	ingressPorts := make(map[string]int)
	for i, in := range sc.GetIngress() {
		path := fmt.Sprintf("spec.ingress[%d]", i)
		c.sidecarPort(path, in.GetPort(), true)
		if b := in.GetBind(); b != "" && !isIP(b) {
			c.add(path+".bind", "bind %q must be an IP address", clip(b))
		}
		c.defaultEndpoint(path+".defaultEndpoint", in.GetDefaultEndpoint())
		if n := in.GetPort().GetNumber(); n != 0 {
			key := in.GetBind() + ":" + strconv.Itoa(int(n))
			if first, dup := ingressPorts[key]; dup {
				c.add(path+".port.number", "port %d is already used by ingress[%d]", n, first)
			} else {
				ingressPorts[key] = i
			}
		}
	}
	egressKeys := make(map[string]int)
	for i, eg := range sc.GetEgress() {
		path := fmt.Sprintf("spec.egress[%d]", i)
		if eg.GetPort() != nil {
			c.sidecarPort(path, eg.GetPort(), false)
		} else {
			if eg.GetBind() != "" {
				c.add(path+".port", "an egress listener with bind needs a port")
			}
			if i != len(sc.GetEgress())-1 {
				c.add(path+".port", "only the last egress listener may omit the port")
			}
		}
		if b := eg.GetBind(); b != "" && !isIP(b) && !strings.HasPrefix(b, "unix://") {
			c.add(path+".bind", "bind %q must be an IP address or unix:// path", clip(b))
		}
		if len(eg.GetHosts()) == 0 {
			c.add(path+".hosts", "at least one host is required")
		}
		for j, h := range eg.GetHosts() {
			if msg := checkNamespacedHost(h, true); msg != "" {
				c.add(fmt.Sprintf("%s.hosts[%d]", path, j), "%s", msg)
			}
		}
		key := eg.GetBind() + ":" + strconv.Itoa(int(eg.GetPort().GetNumber()))
		if first, dup := egressKeys[key]; dup {
			c.add(path, "egress listener on the same bind and port as egress[%d]", first)
		} else {
			egressKeys[key] = i
		}
	}
	if otp := sc.GetOutboundTrafficPolicy(); otp != nil && otp.GetEgressProxy() != nil {
		if otp.GetMode() != networkingv1.OutboundTrafficPolicy_ALLOW_ANY {
			c.add("spec.outboundTrafficPolicy.egressProxy", "egressProxy needs mode ALLOW_ANY")
		}
		c.destination("spec.outboundTrafficPolicy.egressProxy", otp.GetEgressProxy())
	}
}

func (c *checker) sidecarPort(path string, p *networkingv1.SidecarPort, required bool) {
	if p == nil {
		if required {
			c.add(path+".port", "port is required")
		}
		return
	}
	c.port(path+".port.number", p.GetNumber())
	c.optionalPort(path+".port.targetPort", p.GetTargetPort())
	c.protocol(path+".port.protocol", p.GetProtocol(), false)
	c.portName(path+".port.name", p.GetName(), false)
}

// defaultEndpoint checks where an ingress listener forwards: "IP:port" with a
// loopback IPv4 address (the local mesh gives each app its own 127.x.y.z),
// 0.0.0.0 or [::1], or "unix://path". Trellis requires it: with no traffic
// capture there is no other way to know where the app listens.
func (c *checker) defaultEndpoint(path, ep string) {
	if ep == "" {
		c.add(path, "defaultEndpoint is required (for example \"127.0.20.1:9080\" or \"unix:///var/run/app.sock\")")
		return
	}
	if rest, ok := strings.CutPrefix(ep, "unix://"); ok {
		if rest == "" {
			c.add(path, "unix endpoint needs a path")
		}
		return
	}
	ap, err := netip.ParseAddrPort(ep)
	if err != nil {
		c.add(path, "%q must be IP:port or unix://path", clip(ep))
		return
	}
	a := ap.Addr()
	if !(a.Is4() && (a.IsLoopback() || a.IsUnspecified())) && a != netip.IPv6Loopback() {
		c.add(path, "%q: the IP must be a loopback address (127.0.0.0/8 or ::1) or 0.0.0.0", clip(ep))
	}
	c.port(path, uint32(ap.Port()))
}
