package certserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/trellis-mesh/trellis/internal/ca"
)

// apiServer models the API server's TokenReview: each known token has a
// user and the audiences it was issued for. Like kube-apiserver, a token
// whose audiences do not meet spec.audiences is not authenticated, and the
// status names the audiences that matched.
type apiServer struct {
	tokens map[string]tokenInfo
}

type tokenInfo struct {
	user   authenticationv1.UserInfo
	aud    []string
	legacy bool // the server ignores spec.audiences and answers with none
}

func (a apiServer) review(spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	ti, ok := a.tokens[spec.Token]
	if !ok {
		return authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	if ti.legacy {
		return authenticationv1.TokenReviewStatus{Authenticated: true, User: ti.user}
	}
	var matched []string
	for _, a := range spec.Audiences {
		if slices.Contains(ti.aud, a) {
			matched = append(matched, a)
		}
	}
	if len(matched) == 0 {
		return authenticationv1.TokenReviewStatus{Error: "token audiences are invalid for the target audiences"}
	}
	return authenticationv1.TokenReviewStatus{Authenticated: true, User: ti.user, Audiences: matched}
}

func saUser(ns, sa string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
}

var testAPIServer = apiServer{tokens: map[string]tokenInfo{
	"reviews-jwt":  {user: saUser("bookinfo", "reviews"), aud: []string{"istio-ca"}},
	"kube-aud-jwt": {user: saUser("bookinfo", "reviews"), aud: []string{"https://kubernetes.default.svc"}},
	"legacy-jwt":   {user: saUser("bookinfo", "reviews"), legacy: true},
	"admin-jwt":    {user: authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters"}}, aud: []string{"istio-ca"}},
	"forged-sa-jwt": {user: authenticationv1.UserInfo{Username: "system:serviceaccount:bookinfo:reviews",
		Groups: []string{"system:authenticated"}}, aud: []string{"istio-ca"}},
}}

type reviewCase struct {
	name     string
	md       []string // key, value pairs
	csrURIs  []string
	wantCode codes.Code
	wantID   string
	wantLog  string
}

var reviewCases = []reviewCase{
	{name: "authenticated service account gets its identity",
		md:       []string{AuthorizationKey, "Bearer reviews-jwt"},
		wantCode: codes.OK, wantID: "spiffe://cluster.local/ns/bookinfo/sa/reviews"},
	{name: "workload in the token's namespace is accepted",
		md:       []string{AuthorizationKey, "Bearer reviews-jwt", WorkloadKey, "bookinfo/reviews-v1"},
		csrURIs:  []string{"spiffe://cluster.local/ns/bookinfo/sa/reviews"},
		wantCode: codes.OK, wantID: "spiffe://cluster.local/ns/bookinfo/sa/reviews"},
	{name: "unknown token is unauthenticated",
		md:       []string{AuthorizationKey, "Bearer nobody-jwt"},
		wantCode: codes.Unauthenticated, wantLog: "invalid bearer token"},
	{name: "token for another audience is unauthenticated",
		md:       []string{AuthorizationKey, "Bearer kube-aud-jwt"},
		wantCode: codes.Unauthenticated, wantLog: "token audiences are invalid"},
	{name: "server that ignores audiences is not trusted",
		md:       []string{AuthorizationKey, "Bearer legacy-jwt"},
		wantCode: codes.Unauthenticated, wantLog: "do not include"},
	{name: "user that is not a service account is refused",
		md:       []string{AuthorizationKey, "Bearer admin-jwt"},
		wantCode: codes.Unauthenticated, wantLog: "not a service account"},
	{name: "service-account name outside the service-accounts group is refused",
		md:       []string{AuthorizationKey, "Bearer forged-sa-jwt"},
		wantCode: codes.Unauthenticated, wantLog: "not in group system:serviceaccounts"},
	{name: "csr for another identity is refused and logged",
		md:       []string{AuthorizationKey, "Bearer reviews-jwt"},
		csrURIs:  []string{"spiffe://cluster.local/ns/bookinfo/sa/ratings"},
		wantCode: codes.PermissionDenied, wantLog: "asked_for=spiffe://cluster.local/ns/bookinfo/sa/ratings"},
	{name: "workload of another namespace is refused",
		md:       []string{AuthorizationKey, "Bearer reviews-jwt", WorkloadKey, "prod/reviews-v1"},
		wantCode: codes.Unauthenticated, wantLog: "not in the token's namespace"},
	{name: "no token is unauthenticated",
		md:       []string{WorkloadKey, "bookinfo/reviews-v1"},
		wantCode: codes.Unauthenticated, wantLog: "want one authorization header"},
	{name: "basic auth is unauthenticated",
		md:       []string{AuthorizationKey, "Basic cmV2aWV3czp4"},
		wantCode: codes.Unauthenticated, wantLog: "not a bearer token"},
}

// runReviewCases calls CreateCertificate directly (the gRPC and TLS edge is
// covered by TestCreateCertificate) with a TokenReview authenticator.
func runReviewCases(t *testing.T, reviews TokenReviewCreator, cases []reviewCase) {
	t.Helper()
	c, err := ca.Load(ca.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			srv, err := New(Options{CA: c, Logger: slog.New(slog.NewTextHandler(logs, nil)),
				Authenticator: TokenReview{Reviews: reviews, Identity: c.Identity, Timeout: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(tc.md...))
			csr, _ := csrPEM(t, tc.csrURIs...)
			resp, err := srv.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: csr})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not mention %q:\n%s", tc.wantLog, logs.String())
			}
			if tc.wantCode != codes.OK {
				return
			}
			leaf, err := ca.ParseCertificates([]byte(resp.CertChain[0]))
			if err != nil {
				t.Fatal(err)
			}
			id, err := ca.IdentityOf(leaf[0])
			if err != nil || id.String() != tc.wantID {
				t.Errorf("identity = %v, %v; want %s", id, err, tc.wantID)
			}
		})
	}
}

// TestTokenReviewFakeClientset reviews through client-go's fake clientset,
// with a reactor playing the API server.
func TestTokenReviewFakeClientset(t *testing.T) {
	cs := fake.NewClientset()
	var specs []authenticationv1.TokenReviewSpec
	cs.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		specs = append(specs, tr.Spec)
		out := tr.DeepCopy()
		out.Status = testAPIServer.review(tr.Spec)
		return true, out, nil
	})
	runReviewCases(t, cs.AuthenticationV1().TokenReviews(), reviewCases)
	// Every review asked for Istio's CA audience.
	for _, s := range specs {
		if diff := cmp.Diff([]string{"istio-ca"}, s.Audiences); diff != "" {
			t.Errorf("spec.audiences (-want +got):\n%s", diff)
		}
	}
	if len(specs) == 0 {
		t.Error("no TokenReview was created")
	}
}

// trellisdCredential is the bearer token trellisd itself presents to the API
// server in the REST test.
const trellisdCredential = "trellisd-sa-token"

// newTokenReviewServer serves POST /apis/authentication.k8s.io/v1/tokenreviews
// over TLS as kube-apiserver does, for callers presenting trellisdCredential.
func newTokenReviewServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+trellisdCredential {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized, Message: "Unauthorized"})
			return
		}
		// client-go sends protobuf by default, JSON when configured so; answer
		// in kind, as kube-apiserver does.
		ct := r.Header.Get("Content-Type")
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), ct)
		body, err := io.ReadAll(r.Body)
		if !ok || err != nil {
			http.Error(w, "unsupported content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		tr, isTR := obj.(*authenticationv1.TokenReview)
		if err != nil || !isTR {
			http.Error(w, fmt.Sprintf("not a TokenReview: %v", err), http.StatusBadRequest)
			return
		}
		tr.Status = testAPIServer.review(tr.Spec)
		w.Header().Set("Content-Type", info.MediaType)
		w.WriteHeader(http.StatusCreated)
		_ = scheme.Codecs.EncoderForVersion(info.Serializer, authenticationv1.SchemeGroupVersion).Encode(tr, w)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// restConfig is a rest.Config for srv with its own transport, closed when
// the test ends: client-go caches the transports it builds from
// TLSClientConfig, and their idle connections would outlive the test.
func restConfig(t *testing.T, srv *httptest.Server, credential string) *rest.Config {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &rest.Config{Host: srv.URL, BearerToken: credential, Transport: tr, Timeout: 10 * time.Second}
}

// TestTokenReviewREST reviews through a real rest.Config and clientset
// against an httptest server speaking the TokenReview REST API.
func TestTokenReviewREST(t *testing.T) {
	srv := newTokenReviewServer(t)
	for _, ct := range []string{"", "application/json"} { // "": client-go's default, protobuf
		t.Run("content type "+ct, func(t *testing.T) {
			cfg := restConfig(t, srv, trellisdCredential)
			cfg.ContentType = ct
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runReviewCases(t, cs.AuthenticationV1().TokenReviews(), reviewCases)
		})
	}

	t.Run("trellisd refused by the API server fails closed", func(t *testing.T) {
		bad, err := kubernetes.NewForConfig(restConfig(t, srv, "not-trellisd"))
		if err != nil {
			t.Fatal(err)
		}
		a := TokenReview{Reviews: bad.AuthenticationV1().TokenReviews(), Identity: func(ns, sa string) (spiffeid.ID, error) {
			t.Fatal("identity built for an unreviewed token")
			return spiffeid.ID{}, nil
		}}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(AuthorizationKey, "Bearer reviews-jwt"))
		_, err = a.Authenticate(ctx)
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("Authenticate = %v, want an Unauthorized error wrapping ErrUnauthenticated", err)
		}
	})
}

// FuzzServiceAccountUser checks that an accepted user name always round-trips
// to system:serviceaccount:NS:SA with no colon in either part.
func FuzzServiceAccountUser(f *testing.F) {
	for _, s := range []string{"system:serviceaccount:bookinfo:reviews", "system:serviceaccount::x", "kubernetes-admin", "system:serviceaccount:a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ns, sa, err := ServiceAccountUser(authenticationv1.UserInfo{Username: name, Groups: []string{"system:serviceaccounts"}})
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			return
		}
		if ns == "" || sa == "" || strings.Contains(ns+sa, ":") || "system:serviceaccount:"+ns+":"+sa != name {
			t.Fatalf("%q accepted as %q, %q", name, ns, sa)
		}
	})
}
