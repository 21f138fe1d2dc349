package registry

import "testing"

func TestHostMatches(t *testing.T) {
	tests := []struct {
		pattern, host string
		match, meet   bool // HostMatches, HostsIntersect
	}{
		{"*", "reviews.default.svc.cluster.local", true, true},
		{"*.svc.cluster.local", "reviews.default.svc.cluster.local", true, true},
		{"*.default.svc.cluster.local", "*.svc.cluster.local", false, true}, // narrower wildcard: meet, not covered
		{"*.svc.cluster.local", "*.default.svc.cluster.local", true, true},
		{"reviews.default.svc.cluster.local", "REVIEWS.default.svc.cluster.local", true, true},
		{"reviews", "ratings", false, false},
		{"*.example.com", "example.com", false, false},
		{"reviews", "*", false, true},
	}
	for _, tt := range tests {
		if got := HostMatches(tt.pattern, tt.host); got != tt.match {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.match)
		}
		if got := HostsIntersect(tt.pattern, tt.host); got != tt.meet {
			t.Errorf("HostsIntersect(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.meet)
		}
	}
}
