package demo

import (
	"net/netip"

	"github.com/trellis-mesh/trellis/internal/demo/bookinfo"
)

// Addresses of the control plane and the gateway (docs/local-mesh.md).
const (
	XDSAddr        = "127.0.0.1:15010"
	SecureAddr     = "127.0.0.1:15012" // the CSR API and mTLS xDS, which the proxies use
	MonitoringAddr = "127.0.0.1:15014"
	GatewayAddr    = "127.0.0.1:8080"
	// ProductPageURL is the page as a user reaches it, through the gateway.
	ProductPageURL = "http://" + GatewayAddr + "/productpage"
)

// Proxy ports, the same on every proxy address.
const (
	AdminPort     = 15000
	HealthPort    = 15021
	HTTPProxyPort = 15080
)

// Workload is one proxy of the demo and, for a sidecar, the app behind it.
type Workload struct {
	Namespace string
	Name      string         // the WorkloadEntry's name, "reviews-v3"
	Proxy     netip.Addr     // the WorkloadEntry's address
	Gateway   bool           // the ingress gateway: no app, trellis-proxy --gateway
	App       string         // bookinfo service; empty for the gateway
	Version   string         // app version; empty for the gateway
	AppAddr   netip.AddrPort // the Sidecar's defaultEndpoint; invalid for the gateway
}

// ID is "namespace/name", as trellis-proxy --workload takes it.
func (w Workload) ID() string { return w.Namespace + "/" + w.Name }

// ProxyURL is the sidecar's HTTP-proxy listener, what the app uses as
// HTTP_PROXY.
func (w Workload) ProxyURL() string {
	return "http://" + netip.AddrPortFrom(w.Proxy, HTTPProxyPort).String()
}

// ReadyURL is the proxy's readiness endpoint.
func (w Workload) ReadyURL() string {
	return "http://" + netip.AddrPortFrom(w.Proxy, HealthPort).String() + "/healthz/ready"
}

// Plan returns the demo's workloads, gateway first, as in docs/local-mesh.md
// and examples/bookinfo/workloads.yaml.
func Plan() []Workload {
	out := []Workload{{
		Namespace: "istio-system", Name: "istio-ingressgateway",
		Proxy: netip.MustParseAddr("127.0.0.1"), Gateway: true,
	}}
	n := byte(1)
	for _, app := range bookinfo.Names() {
		for _, v := range bookinfo.Versions(app) {
			out = append(out, Workload{
				Namespace: "default",
				Name:      app + "-" + v,
				Proxy:     netip.AddrFrom4([4]byte{127, 0, 10, n}),
				App:       app,
				Version:   v,
				AppAddr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 20, n}), bookinfo.Port),
			})
			n++
		}
	}
	return out
}

// appArgs is the command line, after the program name, that runs w's app.
func appArgs(w Workload) []string {
	return []string{"demo", "app", "--name", w.App, "--version", w.Version,
		"--listen", w.AppAddr.String(), "--proxy", w.ProxyURL()}
}

// DataSubdir, under Options.Dir, is trellisd's data directory: its CA, the
// join tokens and root-cert.pem, which the proxies find there.
const DataSubdir = "data"

// proxyArgs is the trellis-proxy command line for w. With the data
// directory the proxy finds its join token and the CA root, gets its
// certificate from SecureAddr and follows xDS there over mTLS.
func proxyArgs(w Workload, dataDir string) []string {
	args := []string{"--data-dir", dataDir, "--workload", w.ID(), "--address", w.Proxy.String()}
	if w.Gateway {
		args = append(args, "--gateway")
	}
	return args
}
