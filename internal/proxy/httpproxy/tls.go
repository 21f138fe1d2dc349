package httpproxy

import "net/http"

var protoHTTPS = []string{"https"}[:1:1]

// requireTLS answers a plain-text request to a require_tls virtual host
// with a 301 to the same host and path over https, as Envoy does.
func (h *Handler) requireTLS(ex *exchange, r *http.Request) {
	ex.Header()["Location"] = []string{"https://" + r.Host + r.URL.RequestURI()}
	ex.WriteHeader(http.StatusMovedPermanently)
}

// Istio's names for REGISTRY_ONLY: the outbound route table's catch-all
// virtual host and route are "block_all", answering 502 directly.
const (
	blockAllRoute    = "block_all"
	blackHoleCluster = "BlackHoleCluster"
)

// markBlackHole attributes a request answered by Istio's block_all route
// to BlackHoleCluster, as Istio's telemetry does, so that REGISTRY_ONLY
// refusals are counted (istio_requests_total{destination_cluster=
// "BlackHoleCluster",response_code="502"}), not silently dropped.
func markBlackHole(ex *exchange) {
	if ex.route != nil && ex.route.rt.Name == blockAllRoute {
		ex.info.Cluster = blackHoleCluster
	}
}
