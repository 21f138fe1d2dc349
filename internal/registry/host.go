package registry

import "strings"

// HostMatches reports whether host is covered by pattern, as Istio matches
// hosts: "*" covers everything, "*.suffix" covers names ending in ".suffix"
// (and narrower wildcards), anything else only the same name. Comparison is
// case-insensitive.
func HostMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(host, pattern[1:])
	default:
		return pattern == host
	}
}

// HostsIntersect reports whether some name is covered by both a and b.
func HostsIntersect(a, b string) bool { return HostMatches(a, b) || HostMatches(b, a) }
