package config

import (
	"strconv"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
)

// delegateVirtualService checks a VirtualService without hosts, which
// Istio treats as a delegate: it is only reachable through a root's
// http[].delegate, so it carries http rules only, binds to no gateway and
// does not delegate further.
func (c *checker) delegateVirtualService(vs *networkingv1.VirtualService) {
	if len(vs.GetHttp()) == 0 {
		c.add("spec.hosts", "at least one host is required (a VirtualService without hosts is a delegate and needs http routes)")
		return
	}
	if len(vs.GetGateways()) > 0 {
		c.add("spec.gateways", "a delegate VirtualService (no hosts) must not set gateways; its root's apply")
	}
	if len(vs.GetTcp()) > 0 {
		c.add("spec.tcp", "a delegate VirtualService (no hosts) supports only http routes")
	}
	if len(vs.GetTls()) > 0 {
		c.add("spec.tls", "a delegate VirtualService (no hosts) supports only http routes")
	}
	for i, r := range vs.GetHttp() {
		if r.GetDelegate() != nil {
			c.add("spec.http["+strconv.Itoa(i)+"].delegate", "a delegate VirtualService cannot delegate again")
		}
	}
}

// retryPolicies are the retryOn values Envoy's router understands for
// HTTP and gRPC (x-envoy-retry-on and x-envoy-retry-grpc-on), as Istio
// accepts them.
var retryPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"envoy-ratelimited": true, "retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true,
	"retriable-headers": true, "http3-post-connect-failure": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

// retryOn checks a comma-separated retryOn: known policies or HTTP status
// codes.
func (c *checker) retryOn(path, s string) {
	if s == "" {
		return
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || retryPolicies[part] {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil {
			if n < 100 || n > 599 {
				c.add(path, "status code %d is not an HTTP status", n)
			}
			continue
		}
		c.add(path, "%q is not a retry policy (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, "+
			"retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or a status code)", clip(part))
	}
}

// grpcStatusNames are gRPC's status names (doc/statuscodes.md).
var grpcStatusNames = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func isGRPCStatus(s string) bool {
	for _, n := range grpcStatusNames {
		if strings.EqualFold(n, s) {
			return true
		}
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n < len(grpcStatusNames)
}
