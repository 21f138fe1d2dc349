package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1 "istio.io/api/networking/v1"
)

// checker collects semantic errors by field path. Paths use the JSON field
// names users write (spec.http[0].route[1].weight).
type checker struct {
	errs []fieldError
}

func (c *checker) add(path, format string, args ...any) {
	c.errs = append(c.errs, fieldError{path: path, msg: fmt.Sprintf(format, args...)})
}

// validateSpec runs the semantic checks of one kind (Istio's rules, the
// subset Trellis relies on).
func validateSpec(kind Kind, spec proto.Message) []fieldError {
	c := &checker{}
	switch s := spec.(type) {
	case *networkingv1.ServiceEntry:
		c.serviceEntry(s)
	case *networkingv1.WorkloadEntry:
		c.workloadEntry("spec", s, workloadEntryTop)
	case *networkingv1.WorkloadGroup:
		c.workloadGroup(s)
	case *networkingv1.VirtualService:
		c.virtualService(s)
	case *networkingv1.DestinationRule:
		c.destinationRule(s)
	case *networkingv1.Gateway:
		c.gateway(s)
	case *networkingv1.Sidecar:
		c.sidecar(s)
	default:
		c.security(spec)
	}
	return c.errs
}

// ---- shared field checks ----

// port checks a required port number.
func (c *checker) port(path string, n uint32) {
	if n == 0 || n > 65535 {
		c.add(path, "port number must be between 1 and 65535, got %d", n)
	}
}

// optionalPort checks a port number where 0 means unset.
func (c *checker) optionalPort(path string, n uint32) {
	if n != 0 {
		c.port(path, n)
	}
}

// protocols are the names Istio recognises (case-insensitive).
var protocols = map[string]bool{
	"HTTP": true, "HTTPS": true, "HTTP2": true, "GRPC": true, "GRPC-WEB": true, "HTTP_PROXY": true,
	"TCP": true, "TLS": true, "UDP": true, "MONGO": true, "REDIS": true, "MYSQL": true,
}

func (c *checker) protocol(path, p string, required bool) {
	if p == "" {
		if required {
			c.add(path, "protocol is required (HTTP, HTTPS, HTTP2, GRPC, TCP, TLS, ...)")
		}
		return
	}
	if !protocols[strings.ToUpper(p)] {
		c.add(path, "unknown protocol %q (want HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS or MYSQL)", clip(p))
	}
}

func (c *checker) portName(path, name string, required bool) {
	if name == "" {
		if required {
			c.add(path, "port name is required")
		}
		return
	}
	if msg := checkDNSLabel(name); msg != "" {
		c.add(path, "port name %q: %s", clip(name), msg)
	}
}

func (c *checker) nonNegativeDuration(path string, d *durationpb.Duration) {
	if d != nil && (d.Seconds < 0 || d.Nanos < 0) {
		c.add(path, "must not be negative, got %s", d.AsDuration())
	}
}

func (c *checker) labels(path string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if msg := checkLabel(k, labels[k]); msg != "" {
			c.add(path+"["+k+"]", "%s", msg)
		}
	}
}

// exportTo checks Istio's exportTo values: ".", "*" or a namespace.
func (c *checker) exportTo(path string, values []string) {
	for i, v := range values {
		if v == "." || v == "*" || (strings.HasPrefix(v, "~") && len(v) == 1) {
			continue
		}
		if msg := checkDNSLabel(v); msg != "" {
			c.add(fmt.Sprintf("%s[%d]", path, i), "must be \".\", \"*\" or a namespace name: %s", msg)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---- names and addresses ----

// checkDNSLabel returns "" when s is an RFC 1123 label (lower case), else why not.
func checkDNSLabel(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 63 {
		return fmt.Sprintf("%q is longer than 63 characters", clip(s))
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		alnum := (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
		if !alnum && (ch != '-' || i == 0 || i == len(s)-1) {
			return fmt.Sprintf("%q is not a valid DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)", clip(s))
		}
	}
	return ""
}

// checkDNSSubdomain returns "" when s is an RFC 1123 subdomain.
func checkDNSSubdomain(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 253 {
		return fmt.Sprintf("%q is longer than 253 characters", clip(s))
	}
	for _, label := range strings.Split(s, ".") {
		if checkDNSLabel(label) != "" {
			return fmt.Sprintf("%q is not a valid DNS name (lower-case letters, digits, '-' and '.')", clip(s))
		}
	}
	return ""
}

// checkHost checks a hostname: a DNS name, optionally with a leading "*."
// wildcard, or "*" alone when allowStar.
func checkHost(h string, allowStar bool) string {
	switch {
	case h == "":
		return "host must not be empty"
	case h == "*":
		if allowStar {
			return ""
		}
		return "host \"*\" is not allowed here"
	case strings.HasPrefix(h, "*."):
		if msg := checkFQDN(h[2:]); msg != "" {
			return fmt.Sprintf("%q is not a valid wildcard host: %s", clip(h), msg)
		}
		return ""
	case strings.Contains(h, "*"):
		return fmt.Sprintf("%q is not a valid host: a wildcard must be \"*\" or a leading \"*.\"", clip(h))
	}
	if msg := checkFQDN(h); msg != "" {
		return fmt.Sprintf("%q is not a valid host: %s", clip(h), msg)
	}
	return ""
}

func checkFQDN(s string) string {
	if len(s) > 255 {
		return "longer than 255 characters"
	}
	labels := strings.Split(s, ".")
	if last := labels[len(labels)-1]; last != "" && strings.Trim(last, "0123456789") == "" {
		if strings.Trim(s, "0123456789.") == "" {
			return "not a valid IP address"
		}
		return "the last DNS label must not be all digits"
	}
	for _, label := range labels {
		if label == "" {
			return "empty DNS label"
		}
		if strings.ToLower(label) != label {
			return "must be lower case"
		}
		if checkDNSLabel(label) != "" {
			return fmt.Sprintf("%q is not a valid DNS label", clip(label))
		}
	}
	return ""
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func isIPOrCIDR(s string) bool {
	if isIP(s) {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// checkLabel checks a Kubernetes label key and value.
func checkLabel(k, v string) string {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		if msg := checkDNSSubdomain(k[:i]); msg != "" {
			return fmt.Sprintf("label key %q has an invalid prefix: %s", clip(k), msg)
		}
		name = k[i+1:]
	}
	if name == "" || !isLabelValue(name) {
		return fmt.Sprintf("label key %q is not valid (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", clip(k))
	}
	if v != "" && !isLabelValue(v) {
		return fmt.Sprintf("label value %q is not valid (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", clip(v))
	}
	return ""
}

func isLabelValue(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		alnum := (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
		if !alnum && (i == 0 || i == len(s)-1 || (ch != '-' && ch != '_' && ch != '.')) {
			return false
		}
	}
	return true
}

// ---- ServiceEntry, WorkloadEntry, WorkloadGroup ----

func (c *checker) serviceEntry(se *networkingv1.ServiceEntry) {
	if len(se.GetHosts()) == 0 {
		c.add("spec.hosts", "at least one host is required")
	}
	for i, h := range se.GetHosts() {
		path := fmt.Sprintf("spec.hosts[%d]", i)
		if h == "*" {
			c.add(path, "a ServiceEntry host cannot be \"*\"")
			continue
		}
		if msg := checkHost(h, false); msg != "" {
			c.add(path, "%s", msg)
		}
	}
	for i, a := range se.GetAddresses() {
		if !isIPOrCIDR(a) {
			c.add(fmt.Sprintf("spec.addresses[%d]", i), "%q is not an IP address or CIDR", clip(a))
		}
	}
	if len(se.GetPorts()) == 0 {
		c.add("spec.ports", "at least one port is required")
	}
	portNames := make(map[string]bool)
	numbers := make(map[uint32]bool)
	for i, p := range se.GetPorts() {
		path := fmt.Sprintf("spec.ports[%d]", i)
		c.port(path+".number", p.GetNumber())
		c.optionalPort(path+".targetPort", p.GetTargetPort())
		c.protocol(path+".protocol", p.GetProtocol(), false)
		c.portName(path+".name", p.GetName(), true)
		if p.GetName() != "" && portNames[p.GetName()] {
			c.add(path+".name", "port name %q is used twice", clip(p.GetName()))
		}
		if p.GetNumber() != 0 && numbers[p.GetNumber()] {
			c.add(path+".number", "port %d is used twice", p.GetNumber())
		}
		portNames[p.GetName()], numbers[p.GetNumber()] = true, true
	}
	if se.GetWorkloadSelector() != nil && len(se.GetEndpoints()) > 0 {
		c.add("spec.workloadSelector", "workloadSelector and endpoints cannot both be set")
	}
	if ws := se.GetWorkloadSelector(); ws != nil {
		c.labels("spec.workloadSelector.labels", ws.GetLabels())
	}
	res := se.GetResolution()
	switch res {
	case networkingv1.ServiceEntry_NONE:
		if len(se.GetEndpoints()) > 0 {
			c.add("spec.endpoints", "endpoints are not allowed with resolution NONE")
		}
	case networkingv1.ServiceEntry_DNS, networkingv1.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.GetEndpoints()) == 0 {
			for i, h := range se.GetHosts() {
				if strings.HasPrefix(h, "*") {
					c.add(fmt.Sprintf("spec.hosts[%d]", i), "a wildcard host needs endpoints when resolution is %s", res)
				}
			}
		}
		if res == networkingv1.ServiceEntry_DNS_ROUND_ROBIN && len(se.GetEndpoints()) > 1 {
			c.add("spec.endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint")
		}
	}
	for i, ep := range se.GetEndpoints() {
		path := fmt.Sprintf("spec.endpoints[%d]", i)
		mode := workloadEntryInline
		if res == networkingv1.ServiceEntry_STATIC {
			mode = workloadEntryStatic
		}
		c.workloadEntry(path, ep, mode)
		for _, name := range sortedKeys(ep.GetPorts()) {
			if !portNames[name] {
				c.add(path+".ports["+name+"]", "%q is not the name of a port of this ServiceEntry", clip(name))
			}
		}
	}
	c.exportTo("spec.exportTo", se.GetExportTo())
}

// workloadEntryMode says where a WorkloadEntry appears.
type workloadEntryMode uint8

const (
	workloadEntryTop      workloadEntryMode = iota // a WorkloadEntry resource: address required, IP or DNS
	workloadEntryInline                            // ServiceEntry endpoint (DNS resolution): address required, IP or DNS
	workloadEntryStatic                            // ServiceEntry endpoint with STATIC resolution: address must be an IP
	workloadEntryTemplate                          // WorkloadGroup template: no address
)

// maxEndpointWeight keeps sums of endpoint weights within Envoy's uint32
// limit for any realistic number of endpoints in a locality.
const maxEndpointWeight = 1 << 24

func (c *checker) workloadEntry(path string, we *networkingv1.WorkloadEntry, mode workloadEntryMode) {
	addr := we.GetAddress()
	switch {
	case mode == workloadEntryTemplate:
		if addr != "" {
			c.add(path+".address", "a template must not set an address; each instance has its own")
		}
	case addr == "":
		c.add(path+".address", "address is required")
	case strings.HasPrefix(addr, "unix://"):
		if len(addr) == len("unix://") {
			c.add(path+".address", "unix address needs a path")
		}
	case mode == workloadEntryStatic:
		if !isIP(addr) {
			c.add(path+".address", "%q is not an IP address (resolution STATIC needs IP addresses)", clip(addr))
		}
	default:
		if !isIP(addr) {
			if msg := checkFQDN(addr); msg != "" {
				c.add(path+".address", "%q is not an IP address or DNS name: %s", clip(addr), msg)
			}
		}
	}
	for _, name := range sortedKeys(we.GetPorts()) {
		ppath := path + ".ports[" + name + "]"
		if msg := checkDNSLabel(name); msg != "" {
			c.add(ppath, "port name %s", msg)
		}
		c.port(ppath, we.GetPorts()[name])
	}
	c.labels(path+".labels", we.GetLabels())
	if we.GetWeight() > maxEndpointWeight {
		c.add(path+".weight", "weight must be at most %d, got %d", maxEndpointWeight, we.GetWeight())
	}
	if loc := we.GetLocality(); loc != "" && strings.Count(loc, "/") > 2 {
		c.add(path+".locality", "locality %q has more than three parts (region/zone/subzone)", clip(loc))
	}
	if sa := we.GetServiceAccount(); sa != "" {
		if msg := checkDNSSubdomain(sa); msg != "" {
			c.add(path+".serviceAccount", "%s", msg)
		}
	}
}

func (c *checker) workloadGroup(wg *networkingv1.WorkloadGroup) {
	if md := wg.GetMetadata(); md != nil {
		c.labels("spec.metadata.labels", md.GetLabels())
	}
	if wg.GetTemplate() == nil {
		c.add("spec.template", "template is required")
	} else {
		c.workloadEntry("spec.template", wg.GetTemplate(), workloadEntryTemplate)
	}
	p := wg.GetProbe()
	if p == nil {
		return
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", p.GetInitialDelaySeconds()}, {"timeoutSeconds", p.GetTimeoutSeconds()},
		{"periodSeconds", p.GetPeriodSeconds()}, {"successThreshold", p.GetSuccessThreshold()},
		{"failureThreshold", p.GetFailureThreshold()},
	} {
		if f.v < 0 {
			c.add("spec.probe."+f.name, "must not be negative, got %d", f.v)
		}
	}
	switch {
	case p.GetHttpGet() != nil:
		c.port("spec.probe.httpGet.port", p.GetHttpGet().GetPort())
		if path := p.GetHttpGet().GetPath(); path != "" && !strings.HasPrefix(path, "/") {
			c.add("spec.probe.httpGet.path", "path %q must start with \"/\"", clip(path))
		}
		if s := p.GetHttpGet().GetScheme(); s != "" && s != "HTTP" && s != "HTTPS" {
			c.add("spec.probe.httpGet.scheme", "scheme must be HTTP or HTTPS, got %q", clip(s))
		}
	case p.GetTcpSocket() != nil:
		c.port("spec.probe.tcpSocket.port", p.GetTcpSocket().GetPort())
	case p.GetGrpc() != nil:
		c.port("spec.probe.grpc.port", p.GetGrpc().GetPort())
	case p.GetExec() != nil:
		if len(p.GetExec().GetCommand()) == 0 {
			c.add("spec.probe.exec.command", "command is required")
		}
	default:
		c.add("spec.probe", "one of httpGet, tcpSocket, grpc or exec is required")
	}
}
