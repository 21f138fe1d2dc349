package certserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/metadata"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultAudience is the audience a service-account token must carry to be
// accepted by the CSR API, as Istio's CA requires ("istio-ca").
const DefaultAudience = "istio-ca"

// Kubernetes' service-account user name prefix and group
// (k8s.io/apiserver/pkg/authentication/serviceaccount).
const (
	serviceAccountUserPrefix = "system:serviceaccount:"
	serviceAccountsGroup     = "system:serviceaccounts"
)

// TokenReviewCreator creates a TokenReview: client-go's
// Clientset.AuthenticationV1().TokenReviews() satisfies it. It must be safe
// for concurrent use.
type TokenReviewCreator interface {
	Create(ctx context.Context, tr *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// TokenReview authenticates Kubernetes-mode proxies (issue 4 point 2): the
// caller sends its service-account JWT (AuthorizationKey: "Bearer JWT"),
// the API server reviews it for Audiences, and the authenticated user
// system:serviceaccount:NS:SA becomes the only identity the caller may get,
// spiffe://TD/ns/NS/sa/SA. Any other user (a person, a node, a token of
// another audience) is refused.
//
// A WorkloadKey header is optional here; when sent, its namespace must be
// the token's, so a proxy cannot pretend to be a workload of another
// namespace even in the logs.
type TokenReview struct {
	// Reviews is the TokenReview API (required).
	Reviews TokenReviewCreator
	// Audiences the token must be valid for; nil means []{DefaultAudience}.
	Audiences []string
	// Identity builds spiffe://TD/ns/NS/sa/SA ((*ca.CA).Identity) (required).
	Identity func(ns, sa string) (spiffeid.ID, error)
	// Timeout bounds one TokenReview call; zero means 5 seconds.
	Timeout time.Duration
}

var _ Authenticator = TokenReview{}

// Authenticate implements Authenticator. It blocks for at most Timeout on
// the API server.
func (k TokenReview) Authenticate(ctx context.Context) (spiffeid.ID, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get(AuthorizationKey)
	if len(auth) != 1 {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: want one %s header: %w", AuthorizationKey, ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: authorization is not a bearer token: %w", ErrUnauthenticated)
	}
	auds := k.Audiences
	if auds == nil {
		auds = []string{DefaultAudience}
	}
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := k.Reviews.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(tok), Audiences: auds},
	}, metav1.CreateOptions{})
	if err != nil {
		// The API server is down or refuses trellisd itself: the caller is not
		// proven, so this still fails closed.
		return spiffeid.ID{}, fmt.Errorf("tokenreview: create: %w: %w", err, ErrUnauthenticated)
	}
	st := res.Status
	if !st.Authenticated {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: not authenticated: %q: %w", st.Error, ErrUnauthenticated)
	}
	// An API server that ignores spec.audiences (no audience support) answers
	// with none; one that honours them answers with those the token matched.
	// Either way the token must be proven for one of ours (Istio checks the
	// same).
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(auds, a) }) {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: token audiences %q do not include %q: %w", st.Audiences, auds, ErrUnauthenticated)
	}
	ns, sa, err := ServiceAccountUser(st.User)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: %w", err)
	}
	if wl := md.Get(WorkloadKey); len(wl) > 0 {
		if wns, _, _ := strings.Cut(wl[0], "/"); len(wl) != 1 || wns != ns {
			return spiffeid.ID{}, fmt.Errorf("tokenreview: workload %q is not in the token's namespace %q: %w", wl, ns, ErrUnauthenticated)
		}
	}
	id, err := k.Identity(ns, sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("tokenreview: %w", err)
	}
	return id, nil
}

// ServiceAccountUser returns the namespace and service account of a
// TokenReview's user, and an error wrapping ErrUnauthenticated when the user
// is not a service account (system:serviceaccount:NS:SA in the group
// system:serviceaccounts).
func ServiceAccountUser(u authenticationv1.UserInfo) (ns, sa string, err error) {
	rest, ok := strings.CutPrefix(u.Username, serviceAccountUserPrefix)
	if !ok {
		return "", "", fmt.Errorf("user %q is not a service account: %w", u.Username, ErrUnauthenticated)
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", fmt.Errorf("user %q: want %sNAMESPACE:NAME: %w", u.Username, serviceAccountUserPrefix, ErrUnauthenticated)
	}
	if !slices.Contains(u.Groups, serviceAccountsGroup) {
		return "", "", fmt.Errorf("user %q is not in group %s: %w", u.Username, serviceAccountsGroup, ErrUnauthenticated)
	}
	return ns, sa, nil
}
