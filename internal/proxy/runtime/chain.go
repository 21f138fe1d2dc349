package runtime

import (
	"net/netip"
	"time"
)

// Transport protocols a filter chain can match (Envoy's transport_protocol).
const (
	TransportTLS = "tls"        // set by the TLS inspector for a TLS ClientHello
	TransportRaw = "raw_buffer" // anything else (Envoy's default)
)

// FilterChain is one of a listener's filter chains: which connections it
// takes (Match), how they are decrypted (TLS) and what serves them (Kind
// with HTTP or TCP).
type FilterChain struct {
	Name  string
	Match FilterChainMatch
	// TLS terminates TLS (a DownstreamTlsContext transport socket); nil
	// serves the connection's bytes as they arrive (plain text, or TLS
	// passed through to a tcp_proxy).
	TLS  *DownstreamTLS
	Kind ListenerKind
	HTTP *HTTPListener // set when Kind == ListenerHTTP
	TCP  *TCPListener  // set when Kind == ListenerTCP
}

// FilterChainMatch is Envoy's filter_chain_match. A zero field matches
// anything. Among the chains of a listener, the most specific match wins,
// criterion by criterion in Envoy's order: destination port, destination
// IP (longest prefix), server name (exact, then the longest wildcard),
// transport protocol, application protocols, source IP (longest prefix).
type FilterChainMatch struct {
	DestinationPort      uint16         // 0: any
	PrefixRanges         []netip.Prefix // destination address; empty: any
	ServerNames          []string       // SNI, lower case; "*.example.com" wildcards; empty: any
	TransportProtocol    string         // TransportTLS, TransportRaw or "": any
	ApplicationProtocols []string       // ALPN offered by the client (or detected "http/1.1", "h2c"); empty: any
	SourcePrefixRanges   []netip.Prefix // source address; empty: any
}

// ListenerFilters are the listener filters that feed filter-chain
// matching by peeking at the first bytes of a connection without
// consuming them.
type ListenerFilters struct {
	// TLSInspector reads a TLS ClientHello's SNI and ALPN and sets the
	// transport protocol to TransportTLS.
	TLSInspector bool
	// HTTPInspector detects plain-text HTTP/1.x ("http/1.1") and HTTP/2
	// prior knowledge ("h2c") as application protocols.
	HTTPInspector bool
	// Timeout bounds the peek (listener_filters_timeout); 0 means Envoy's
	// 15s.
	Timeout time.Duration
	// ContinueOnTimeout matches a chain with what was learnt so far when
	// the peek times out (a server-first protocol); false closes the
	// connection, as Envoy's continue_on_listener_filters_timeout default.
	ContinueOnTimeout bool
}

// Chains returns l's filter chains. A listener built by hand with only
// Kind/HTTP/TCP set has one chain matching everything.
func (l *Listener) Chains() []*FilterChain {
	if len(l.FilterChains) > 0 || l.DefaultChain != nil {
		return l.FilterChains
	}
	if l.Kind == 0 {
		return nil
	}
	return []*FilterChain{{Name: l.Name, Kind: l.Kind, HTTP: l.HTTP, TCP: l.TCP}}
}
