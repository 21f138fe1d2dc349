package certserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/metadata"
)

// TokenVerifier checks a join token (*jointoken.Issuer).
type TokenVerifier interface {
	Verify(ns, name, token string) bool
}

// JoinTokens authenticates local-mode proxies: the caller sends its
// WorkloadEntry's name (WorkloadKey) and that workload's join token
// (AuthorizationKey: "Bearer TOKEN"). The identity is the WorkloadEntry's
// serviceAccount ("default" when it has none, as in Istio) in its namespace.
type JoinTokens struct {
	Tokens TokenVerifier
	// ServiceAccount returns the serviceAccount of WorkloadEntry ns/name, and
	// false when no such WorkloadEntry exists. Must be safe for concurrent use.
	ServiceAccount func(ns, name string) (sa string, ok bool)
	// Identity builds spiffe://TD/ns/NS/sa/SA ((*ca.CA).Identity).
	Identity func(ns, sa string) (spiffeid.ID, error)
}

var _ Authenticator = JoinTokens{}

// Authenticate implements Authenticator.
func (j JoinTokens) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	wl := md.Get(WorkloadKey)
	auth := md.Get(AuthorizationKey)
	if len(wl) != 1 || len(auth) != 1 {
		return spiffeid.ID{}, fmt.Errorf("join token: want one %s and one %s header: %w", WorkloadKey, AuthorizationKey, ErrUnauthenticated)
	}
	ns, name, ok := strings.Cut(wl[0], "/")
	if !ok || ns == "" || name == "" {
		return spiffeid.ID{}, fmt.Errorf("join token: workload %q: want NAMESPACE/NAME: %w", wl[0], ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return spiffeid.ID{}, fmt.Errorf("join token: authorization is not a bearer token: %w", ErrUnauthenticated)
	}
	if !j.Tokens.Verify(ns, name, tok) {
		return spiffeid.ID{}, fmt.Errorf("join token: bad token for %s/%s: %w", ns, name, ErrUnauthenticated)
	}
	sa, ok := j.ServiceAccount(ns, name)
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("join token: no WorkloadEntry %s/%s: %w", ns, name, ErrUnauthenticated)
	}
	if sa == "" {
		sa = "default"
	}
	id, err := j.Identity(ns, sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("join token: %w", err)
	}
	return id, nil
}
