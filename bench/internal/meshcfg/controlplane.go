package meshcfg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadNamespace is the namespace of the control-plane load config.
const LoadNamespace = "load"

// Load is the control-plane load: Services services of Endpoints endpoints
// each (WorkloadEntries selected by the ServiceEntry), Proxies proxy
// workloads, and optionally one Sidecar per proxy importing Window services.
type Load struct {
	Services  int
	Endpoints int
	Proxies   int
	// Window > 0 scopes each proxy with a Sidecar whose egress imports Window
	// services; 0 gives every proxy every service (no Sidecar).
	Window int
}

// ServiceHost is the hostname of service i.
func ServiceHost(i int) string {
	return fmt.Sprintf("svc-%04d.%s.svc.cluster.local", i, LoadNamespace)
}

// ProxyName is the WorkloadEntry name of proxy k.
func ProxyName(k int) string { return fmt.Sprintf("proxy-%04d", k) }

// ProxyAddr is proxy k's address (127.1.0.0/16).
func ProxyAddr(k int) string { return Addr(1, k).String() }

// NodeID is proxy k's xDS node id (docs/xds.md "Node identity").
func NodeID(k int) string {
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ProxyAddr(k), ProxyName(k), LoadNamespace, LoadNamespace)
}

// Sees reports whether proxy k's config includes service i.
func (l Load) Sees(k, i int) bool {
	if l.Window <= 0 || l.Window >= l.Services {
		return true
	}
	start := (k * l.Window) % l.Services
	d := (i - start + l.Services) % l.Services
	return d < l.Window
}

// Affected returns the proxies whose config includes service i.
func (l Load) Affected(i int) []int {
	var out []int
	for k := range l.Proxies {
		if l.Sees(k, i) {
			out = append(out, k)
		}
	}
	return out
}

// Write writes the whole config to dir: svc-NNNN.yaml (ServiceEntry),
// we-svc-NNNN.yaml (its WorkloadEntries), proxies.yaml, sidecars.yaml when
// scoped, and vs-svc-NNNN.yaml for every service changed by VirtualService
// edits (vsServices).
func (l Load) Write(dir string, vsServices []int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write load config: %w", err)
	}
	for i := range l.Services {
		se := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%04[1]d, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: svc-%04[1]d}
`, i, LoadNamespace, ServiceHost(i))
		if err := WriteFile(filepath.Join(dir, fmt.Sprintf("svc-%04d.yaml", i)), se); err != nil {
			return err
		}
		if err := WriteFile(l.endpointsPath(dir, i), l.EndpointsYAML(i, "")); err != nil {
			return err
		}
	}
	var b strings.Builder
	for k := range l.Proxies {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: %s}
spec:
  address: %s
  labels: {app: proxy, proxy: p%04d}
`, ProxyName(k), LoadNamespace, ProxyAddr(k), k)
	}
	if err := WriteFile(filepath.Join(dir, "proxies.yaml"), b.String()); err != nil {
		return err
	}
	if l.Window > 0 {
		b.Reset()
		for k := range l.Proxies {
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: %s, namespace: %s}
spec:
  workloadSelector:
    labels: {proxy: p%04d}
  egress:
  - hosts:
`, ProxyName(k), LoadNamespace, k)
			for i := range l.Services {
				if l.Sees(k, i) {
					fmt.Fprintf(&b, "    - ./%s\n", ServiceHost(i))
				}
			}
		}
		if err := WriteFile(filepath.Join(dir, "sidecars.yaml"), b.String()); err != nil {
			return err
		}
	}
	for _, i := range vsServices {
		if err := l.WriteVirtualService(dir, i, "initial"); err != nil {
			return err
		}
	}
	return nil
}

func (l Load) endpointsPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("we-svc-%04d.yaml", i))
}

// EndpointsYAML returns service i's WorkloadEntries; a non-empty firstAddr
// replaces the first endpoint's address (the endpoint-change edit).
func (l Load) EndpointsYAML(i int, firstAddr string) string {
	var b strings.Builder
	for e := range l.Endpoints {
		addr := Addr(2, i*l.Endpoints+e).String()
		if e == 0 && firstAddr != "" {
			addr = firstAddr
		}
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-%04[1]d-%[2]d, namespace: %[3]s}
spec:
  address: %[4]s
  labels: {app: svc-%04[1]d}
`, i, e, LoadNamespace, addr)
	}
	return b.String()
}

// WriteEndpointChange rewrites service i's endpoint file, moving its first
// endpoint to addr. addr appears verbatim in the ClusterLoadAssignment, so a
// client can detect the change by its bytes.
func (l Load) WriteEndpointChange(dir string, i int, addr string) error {
	return WriteFile(l.endpointsPath(dir, i), l.EndpointsYAML(i, addr))
}

// WriteVirtualService writes vs-svc-NNNN.yaml routing service i to itself and
// setting request header x-bench-mark: mark. mark appears verbatim in the
// RouteConfiguration.
func (l Load) WriteVirtualService(dir string, i int, mark string) error {
	vs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%04[1]d, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  http:
  - headers:
      request:
        set: {x-bench-mark: %[4]s}
    route:
    - destination: {host: %[3]s, port: {number: 8080}}
`, i, LoadNamespace, ServiceHost(i), mark)
	return WriteFile(filepath.Join(dir, fmt.Sprintf("vs-svc-%04d.yaml", i)), vs)
}
