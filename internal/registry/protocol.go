package registry

import "strings"

// ParseProtocol returns the protocol of a port the way Istio decides it: the
// explicit protocol field when set (case-insensitive), else the prefix of the
// port name before the first "-" ("http-web" and "http" are both HTTP). A
// value Istio does not treat specially yields ProtocolUnknown.
func ParseProtocol(protocol, name string) Protocol {
	if protocol != "" {
		return protocolFromString(protocol)
	}
	prefix, _, _ := strings.Cut(name, "-")
	return protocolFromString(prefix)
}

func protocolFromString(s string) Protocol {
	switch strings.ToUpper(s) {
	case "HTTP", "GRPC-WEB":
		return ProtocolHTTP
	case "HTTP2":
		return ProtocolHTTP2
	case "GRPC":
		return ProtocolGRPC
	case "HTTPS":
		return ProtocolHTTPS
	case "TCP", "MYSQL", "REDIS":
		// Istio handles MySQL and Redis as opaque TCP unless a filter is
		// enabled by a flag; Trellis has no such filters.
		return ProtocolTCP
	case "TLS":
		return ProtocolTLS
	case "MONGO":
		return ProtocolMongo
	default:
		return ProtocolUnknown
	}
}
