package listener

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// selectChain picks one of chains (a listener's, see runtime.Listener.Chains) for a connection as Envoy does:
// criterion by criterion in a fixed order, keeping only the chains with the
// most specific match on each, where a chain that leaves a criterion unset
// matches it least specifically. It returns def (the listener's default
// chain) when no chain survives; nil closes the connection.
func selectChain(chains []*runtime.FilterChain, def *runtime.FilterChain, ci connInfo) *runtime.FilterChain {
	c := chains
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 1. destination port
		if m.DestinationPort == 0 {
			return false, 0
		}
		return true, boolScore(m.DestinationPort == ci.dst.Port())
	})
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 2. destination IP
		return prefixScore(m.PrefixRanges, ci.dst.Addr())
	})
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 3. server name
		return serverNameScore(m.ServerNames, ci.sni)
	})
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 4. transport protocol
		if m.TransportProtocol == "" {
			return false, 0
		}
		return true, boolScore(m.TransportProtocol == ci.transport)
	})
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 5. application protocols
		if len(m.ApplicationProtocols) == 0 {
			return false, 0
		}
		// The client's first protocol that some chain lists wins: score by
		// the client's order.
		for i, p := range ci.alpn {
			if slices.Contains(m.ApplicationProtocols, p) {
				return true, len(ci.alpn) - i
			}
		}
		return true, -1
	})
	c = narrow(c, func(m *runtime.FilterChainMatch) (bool, int) { // 6. source IP
		return prefixScore(m.SourcePrefixRanges, ci.src)
	})
	if len(c) == 0 {
		return def
	}
	return c[0]
}

// narrow keeps the chains that match one criterion best. score reports
// whether the chain sets the criterion and, if so, how specific its match
// is (negative: no match). Chains that set it and match beat chains that
// leave it unset; chains that set it and do not match are dropped.
func narrow(chains []*runtime.FilterChain, score func(*runtime.FilterChainMatch) (set bool, s int)) []*runtime.FilterChain {
	best := -1
	var kept, unset []*runtime.FilterChain
	for _, c := range chains {
		set, s := score(&c.Match)
		switch {
		case !set:
			unset = append(unset, c)
		case s < 0:
		case s > best:
			best, kept = s, append(kept[:0], c)
		case s == best:
			kept = append(kept, c)
		}
	}
	if len(kept) > 0 {
		return kept
	}
	return unset
}

func boolScore(ok bool) int {
	if ok {
		return 0
	}
	return -1
}

// prefixScore is the longest prefix of ps containing a (-1: none).
func prefixScore(ps []netip.Prefix, a netip.Addr) (bool, int) {
	if len(ps) == 0 {
		return false, 0
	}
	best := -1
	for _, p := range ps {
		if a.IsValid() && p.Contains(a) && p.Bits() > best {
			best = p.Bits()
		}
	}
	return true, best
}

// serverNameScore ranks an exact SNI match above any wildcard, and a
// longer wildcard suffix above a shorter one. A wildcard "*.example.com"
// matches any name ending in ".example.com" (Envoy), not "example.com".
func serverNameScore(names []string, sni string) (bool, int) {
	if len(names) == 0 {
		return false, 0
	}
	best := -1
	for _, n := range names {
		switch {
		case sni == "":
		case n == sni:
			return true, 1 << 16
		case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(sni) > len(n)-1:
			best = max(best, len(n))
		}
	}
	return true, best
}
