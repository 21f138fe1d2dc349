package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Identity is an Istio workload identity: spiffe://TD/ns/NS/sa/SA.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String is the SPIFFE ID.
func (i Identity) String() string {
	return "spiffe://" + i.TrustDomain + "/ns/" + i.Namespace + "/sa/" + i.ServiceAccount
}

// ParseIdentity parses an Istio SPIFFE ID. It accepts only the
// spiffe://TD/ns/NS/sa/SA shape with every part non-empty, as a peer's
// identity must have; the syntax rules are SPIFFE's (go-spiffe).
func ParseIdentity(s string) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("ca: parse identity: %w", err)
	}
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return Identity{}, fmt.Errorf("ca: parse identity %q: want spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT", s)
	}
	return Identity{TrustDomain: id.TrustDomain().Name(), Namespace: parts[1], ServiceAccount: parts[3]}, nil
}

// IdentityOf returns the single SPIFFE URI SAN of an SVID.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			found = append(found, u.String())
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, errors.New("ca: certificate has no SPIFFE ID")
	case 1:
		return ParseIdentity(found[0])
	default:
		return Identity{}, fmt.Errorf("ca: certificate has %d SPIFFE IDs, an SVID has one", len(found))
	}
}
