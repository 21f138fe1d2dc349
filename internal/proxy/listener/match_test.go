package listener

import (
	"net/netip"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func TestSelectChain(t *testing.T) {
	chain := func(name string, m runtime.FilterChainMatch) *runtime.FilterChain {
		return &runtime.FilterChain{Name: name, Match: m, Kind: runtime.ListenerTCP}
	}
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	ci := func(dst, sni, transport string, alpn ...string) connInfo {
		return connInfo{dst: netip.MustParseAddrPort(dst), src: netip.MustParseAddr("127.0.0.9"), sni: sni, transport: transport, alpn: alpn}
	}
	const tlsT, raw = runtime.TransportTLS, runtime.TransportRaw
	// Istio's PERMISSIVE inbound: mTLS chain (tls + istio ALPN), TLS from
	// non-mesh clients, plain text.
	permissive := []*runtime.FilterChain{
		chain("mtls", runtime.FilterChainMatch{TransportProtocol: tlsT, ApplicationProtocols: []string{"istio-peer-exchange", "istio"}}),
		chain("tls", runtime.FilterChainMatch{TransportProtocol: tlsT}),
		chain("plain", runtime.FilterChainMatch{TransportProtocol: raw}),
	}
	gateway := []*runtime.FilterChain{
		chain("exact", runtime.FilterChainMatch{ServerNames: []string{"a.example.com"}}),
		chain("wild", runtime.FilterChainMatch{ServerNames: []string{"*.example.com"}}),
		chain("deeper", runtime.FilterChainMatch{ServerNames: []string{"*.b.example.com"}}),
		chain("nosni", runtime.FilterChainMatch{}),
	}
	subnets := []*runtime.FilterChain{
		chain("wide", runtime.FilterChainMatch{PrefixRanges: pfx("127.0.0.0/8")}),
		chain("narrow", runtime.FilterChainMatch{PrefixRanges: pfx("127.0.30.0/24"), ServerNames: []string{"x.example.com"}}),
		chain("port", runtime.FilterChainMatch{DestinationPort: 443}),
	}
	def := chain("default", runtime.FilterChainMatch{})
	tests := []struct {
		name   string
		chains []*runtime.FilterChain
		def    *runtime.FilterChain
		ci     connInfo
		want   string // "" for nil
	}{
		{"mtls by alpn", permissive, nil, ci("127.0.0.1:80", "", tlsT, "istio", "h2"), "mtls"},
		{"tls without istio alpn", permissive, nil, ci("127.0.0.1:80", "", tlsT, "h2"), "tls"},
		{"plain text", permissive, nil, ci("127.0.0.1:80", "", raw), "plain"},
		{"strict refuses plain", permissive[:1], nil, ci("127.0.0.1:80", "", raw), ""},
		{"strict refuses plain, default chain", permissive[:1], def, ci("127.0.0.1:80", "", raw), "default"},
		{"exact sni beats wildcard", gateway, nil, ci("127.0.0.1:443", "a.example.com", tlsT), "exact"},
		{"longest wildcard", gateway, nil, ci("127.0.0.1:443", "c.b.example.com", tlsT), "deeper"},
		{"wildcard", gateway, nil, ci("127.0.0.1:443", "z.example.com", tlsT), "wild"},
		{"wildcard excludes apex", gateway, nil, ci("127.0.0.1:443", "example.com", tlsT), "nosni"},
		{"no sni", gateway, nil, ci("127.0.0.1:443", "", raw), "nosni"},
		{"unknown sni falls to unset", gateway, nil, ci("127.0.0.1:443", "other.org", tlsT), "nosni"},
		{"port first", subnets, nil, ci("127.0.30.1:443", "x.example.com", tlsT), "port"},
		{"longest prefix before sni", subnets, nil, ci("127.0.30.1:80", "x.example.com", tlsT), "narrow"},
		{"longest prefix then sni mismatch drops", subnets, nil, ci("127.0.30.1:80", "y.example.com", tlsT), ""},
		{"wide prefix", subnets, nil, ci("127.0.40.1:80", "y.example.com", tlsT), "wide"},
		{"no chains", nil, def, ci("127.0.0.1:80", "", raw), "default"},
		{"alpn in client order", []*runtime.FilterChain{
			chain("h2", runtime.FilterChainMatch{ApplicationProtocols: []string{"h2"}}),
			chain("h1", runtime.FilterChainMatch{ApplicationProtocols: []string{"http/1.1"}}),
		}, nil, ci("127.0.0.1:80", "", raw, "http/1.1", "h2"), "h1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := selectChain(tc.chains, tc.def, tc.ci)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Errorf("selectChain = %q, want %q", name, tc.want)
			}
		})
	}
}
