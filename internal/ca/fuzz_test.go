package ca

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzParseIdentity: parsing never panics, and what parses prints back to the
// same string and to a valid SPIFFE ID.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{
		"spiffe://cluster.local/ns/default/sa/reviews",
		"spiffe://td/ns/a/sa/b/c",
		"spiffe://cluster.local/ns/%2e%2e/sa/x",
		"spiffe:///ns//sa/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("%q parsed to %+v, which prints as %q", s, id, id.String())
		}
		if id.Namespace == "" || id.ServiceAccount == "" || id.TrustDomain == "" {
			t.Fatalf("%q parsed with an empty part: %+v", s, id)
		}
		if _, err := spiffeid.FromString(id.String()); err != nil {
			t.Fatalf("%q: printed form is not a SPIFFE ID: %v", s, err)
		}
	})
}
