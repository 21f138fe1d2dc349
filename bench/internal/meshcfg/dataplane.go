package meshcfg

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Plan is the data-plane address plan. The zero value is not usable; use
// DefaultPlan.
type Plan struct {
	App           netip.Addr // fortio server: HTTP 8080, gRPC 8079, TCP echo 8078
	ClientSidecar netip.Addr // client workload's proxy; egress binds here
	ServerSidecar netip.Addr // server workload's proxy; inbound listeners here
	Trellisd      netip.Addr // xDS :15010, monitoring :15014
}

// Ports of the benchmark app, the same on every hop.
const (
	PortHTTP = 8080
	PortGRPC = 8079
	PortTCP  = 8078
)

// Namespace is the namespace of the data-plane topology.
const Namespace = "bench"

// ServerHost is the server's service name.
const ServerHost = "server.bench.svc.cluster.local"

// DefaultPlan uses 127.0.150-154.x: the demo uses 127.0.10.x/127.0.20.x.
func DefaultPlan() Plan {
	return Plan{
		App:           netip.MustParseAddr("127.0.150.1"),
		ClientSidecar: netip.MustParseAddr("127.0.151.1"),
		ServerSidecar: netip.MustParseAddr("127.0.151.2"),
		Trellisd:      netip.MustParseAddr("127.0.154.1"),
	}
}

// DataPlane is the two-sidecar topology: client → client sidecar egress
// (ClientSidecar:PORT) → server sidecar inbound (ServerSidecar:PORT) → app.
type DataPlane struct {
	Plan Plan
	// Fillers adds this many extra HTTP services the client sidecar also
	// sees, to measure memory per cluster.
	Fillers int
	// FillerEndpoints is the number of endpoints per filler; 0 means 1.
	FillerEndpoints int
	// MTLS turns on automatic mTLS between the sidecars, as Istio users do:
	// every WorkloadEntry carries security.istio.io/tlsMode: istio and a
	// mesh-wide PeerAuthentication is STRICT, so the server sidecar refuses
	// plain text. false: no labels, no PeerAuthentication (plain text).
	MTLS bool
}

// PeerAuthenticationStrict is the mesh-wide STRICT PeerAuthentication (root
// namespace istio-system) the MTLS topology adds.
const PeerAuthenticationStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
`

// YAML returns the topology as one multi-document YAML string.
func (d DataPlane) YAML() string {
	p := d.Plan
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: %[1]s}
spec:
  hosts: [%[2]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %[3]d, name: http, protocol: HTTP}
  - {number: %[4]d, name: grpc, protocol: GRPC}
  - {number: %[5]d, name: tcp, protocol: TCP}
  workloadSelector:
    labels: {app: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server, namespace: %[1]s}
spec:
  address: %[6]s
  labels: {app: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: %[1]s}
spec:
  address: %[7]s
  labels: {app: client}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server, namespace: %[1]s}
spec:
  workloadSelector:
    labels: {app: server}
  ingress:
  - port: {number: %[3]d, name: http, protocol: HTTP}
    defaultEndpoint: %[8]s:%[3]d
  - port: {number: %[4]d, name: grpc, protocol: GRPC}
    defaultEndpoint: %[8]s:%[4]d
  - port: {number: %[5]d, name: tcp, protocol: TCP}
    defaultEndpoint: %[8]s:%[5]d
  egress:
  - hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: %[1]s}
spec:
  workloadSelector:
    labels: {app: client}
  egress:
  - port: {number: %[3]d, name: http, protocol: HTTP}
    bind: %[7]s
    hosts: ["./*"]
  - port: {number: %[4]d, name: grpc, protocol: GRPC}
    bind: %[7]s
    hosts: ["./*"]
  - port: {number: %[5]d, name: tcp, protocol: TCP}
    bind: %[7]s
    hosts: ["./*"]
`, Namespace, ServerHost, PortHTTP, PortGRPC, PortTCP, p.ServerSidecar, p.ClientSidecar, p.App)
	eps := max(d.FillerEndpoints, 1)
	for i := range d.Fillers {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: filler-%[2]d, namespace: %[1]s}
spec:
  hosts: [filler-%[2]d.%[1]s.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %[3]d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: filler-%[2]d}
`, Namespace, i, PortHTTP)
		for e := range eps {
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: filler-%[2]d-%[3]d, namespace: %[1]s}
spec:
  address: %[4]s
  labels: {app: filler-%[2]d}
`, Namespace, i, e, Addr(4, i*eps+e))
		}
	}
	out := b.String()
	if d.MTLS {
		// Every WorkloadEntry runs (or stands for) a sidecar: the label auto
		// mTLS keys on.
		out = strings.ReplaceAll(out, "\n  labels: {", "\n  labels: {security.istio.io/tlsMode: istio, ")
		out += "---\n" + PeerAuthenticationStrict
	}
	return out
}

// Write writes the topology to dir/mesh.yaml, creating dir.
func (d DataPlane) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write mesh config: %w", err)
	}
	return WriteFile(filepath.Join(dir, "mesh.yaml"), d.YAML())
}

// Addr returns the n-th address (0-based) of the 127.B.0.0/16 block, skipping
// .0 host parts: 127.B.0.1, 127.B.0.2, ... It panics past 65000 addresses,
// which no scenario reaches.
func Addr(block, n int) netip.Addr {
	if n < 0 || n >= 65000 || block < 1 || block > 255 {
		panic(fmt.Sprintf("meshcfg.Addr(%d, %d) out of range", block, n))
	}
	n++
	return netip.AddrFrom4([4]byte{127, byte(block), byte(n / 256), byte(n % 256)})
}

// WriteFile replaces path atomically (a hidden temporary file renamed into
// place), so a directory watcher never sees a half-written document.
func WriteFile(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
