package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var now = time.Unix(1_800_000_000, 0)

// keyPair is a test signing key and its public JWK.
type keyPair struct {
	priv any
	alg  jose.SignatureAlgorithm
	kid  string
}

func newRSA(t testing.TB, kid string) keyPair {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k, jose.RS256, kid}
}

func newEC(t testing.TB, kid string) keyPair {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k, jose.ES256, kid}
}

func (k keyPair) public() jose.JSONWebKey {
	var pub any
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	}
	return jose.JSONWebKey{Key: pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func jwks(keys ...keyPair) *jose.JSONWebKeySet {
	ks := &jose.JSONWebKeySet{}
	for _, k := range keys {
		ks.Keys = append(ks.Keys, k.public())
	}
	return ks
}

func sign(t testing.TB, k keyPair, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func good() map[string]any {
	return map[string]any{
		"iss": "https://issuer.example", "sub": "alice", "aud": []string{"bookinfo"},
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "groups": []string{"admins"},
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	rsaKey := newRSA(t, "k1")
	ecKey := newEC(t, "k2")
	other := newRSA(t, "k1") // same kid, different key: a forged signature
	keys := jwks(rsaKey, ecKey)
	p := Params{Issuer: "https://issuer.example", Audiences: []string{"bookinfo"}}
	valid := sign(t, rsaKey, good())
	parts := strings.Split(valid, ".")

	// HS256 with the RSA public key bytes as the HMAC secret: the classic
	// algorithm-confusion forgery.
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.priv.(*rsa.PrivateKey).PublicKey)
	hsSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubDER},
		(&jose.SignerOptions{}).WithHeader("kid", "k1"))
	hsJWS, _ := hsSigner.Sign(parts1(t, valid))
	confused, _ := hsJWS.CompactSerialize()

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"valid rsa", valid, nil},
		{"valid ec", sign(t, ecKey, good()), nil},
		{"no kid tries all keys", sign(t, keyPair{ecKey.priv, jose.ES256, ""}, good()), nil},
		{"aud string", sign(t, rsaKey, with(good(), "aud", "bookinfo")), nil},
		{"aud with scheme and slash", sign(t, rsaKey, with(good(), "aud", "https://bookinfo/")), nil},
		{"exp within skew", sign(t, rsaKey, with(good(), "exp", now.Add(-30*time.Second).Unix())), nil},
		{"nbf within skew", sign(t, rsaKey, with(good(), "nbf", now.Add(30*time.Second).Unix())), nil},
		{"alg none", b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".", ErrBadAlg},
		{"alg none with signature", b64(`{"alg":"none"}`) + "." + parts[1] + "." + parts[2], ErrBadAlg},
		{"hs256 with rsa public key", confused, ErrKidAlg},
		{"header alg swapped to ES256", b64(`{"alg":"ES256","kid":"k1"}`) + "." + parts[1] + "." + parts[2], ErrKidAlg},
		{"expired", sign(t, rsaKey, with(good(), "exp", now.Add(-2*time.Minute).Unix())), ErrExpired},
		{"not yet valid", sign(t, rsaKey, with(good(), "nbf", now.Add(2*time.Minute).Unix())), ErrNotYetValid},
		{"wrong issuer", sign(t, rsaKey, with(good(), "iss", "https://evil.example")), ErrIssuer},
		{"no issuer", sign(t, rsaKey, with(good(), "iss", "")), ErrIssuer},
		{"wrong audience", sign(t, rsaKey, with(good(), "aud", []string{"other"})), ErrAudience},
		{"bad signature", sign(t, other, good()), ErrVerification},
		{"tampered payload", parts[0] + "." + b64(`{"iss":"https://issuer.example","sub":"root","aud":"bookinfo"}`) + "." + parts[2], ErrVerification},
		{"unknown kid", sign(t, newRSA(t, "k9"), good()), ErrKidAlg},
		{"two sections", parts[0] + "." + parts[1], ErrBadFormat},
		{"garbage", "a.b.c", ErrBadFormat},
		{"exp not a number", sign(t, rsaKey, with(good(), "exp", "tomorrow")), nil /* any error */},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Verify(tc.token, keys, p, now)
			switch {
			case tc.name == "exp not a number":
				if err == nil {
					t.Fatal("Verify accepted a non-numeric exp")
				}
			case tc.want == nil && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			case tc.want == nil && tok.Subject != "alice":
				t.Fatalf("subject = %q", tok.Subject)
			}
		})
	}
}

func parts1(t *testing.T, tok string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPeek(t *testing.T) {
	k := newEC(t, "")
	iss, err := Peek(sign(t, k, good()))
	if err != nil || iss != "https://issuer.example" {
		t.Fatalf("Peek = %q, %v", iss, err)
	}
	if _, err := Peek("x.y"); !errors.Is(err, ErrBadFormat) {
		t.Fatalf("Peek(bad) error = %v", err)
	}
}

// TestCacheRefreshFailClosed serves a JWKS from a loopback server, rotates
// the key, and takes the server down: tokens verify while the document is
// cached, verify against the new key after the cache duration, and fail
// closed once the document cannot be fetched.
func TestCacheRefreshFailClosed(t *testing.T) {
	k1, k2 := newRSA(t, "k1"), newRSA(t, "k2")
	var doc atomic.Pointer[jose.JSONWebKeySet]
	doc.Store(jwks(k1))
	var fetches, down atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(doc.Load())
	}))
	defer srv.Close()
	clock := now
	c := NewCache(CacheOptions{Now: func() time.Time { return clock }})
	defer c.Close()
	remote := Remote{URI: srv.URL, CacheDuration: time.Minute}
	ctx := context.Background()
	verify := func(k keyPair) error {
		keys, err := c.Keys(ctx, remote)
		if err != nil {
			return err
		}
		_, err = Verify(sign(t, k, good()), keys, Params{}, clock)
		return err
	}
	if err := verify(k1); err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	doc.Store(jwks(k2))
	if err := verify(k1); err != nil || fetches.Load() != 1 {
		t.Fatalf("cached: err %v, fetches %d", err, fetches.Load())
	}
	clock = clock.Add(2 * time.Minute)
	if err := verify(k2); err != nil || fetches.Load() != 2 {
		t.Fatalf("refreshed: err %v, fetches %d", err, fetches.Load())
	}
	if err := verify(k1); !errors.Is(err, ErrKidAlg) {
		t.Fatalf("rotated-out key: %v", err)
	}
	down.Store(1)
	clock = clock.Add(2 * time.Minute)
	if err := verify(k2); !errors.Is(err, ErrJWKSFetch) {
		t.Fatalf("server down: err %v, want fail closed", err)
	}
	// A failure is remembered briefly, not refetched by every request.
	n := fetches.Load()
	if err := verify(k2); !errors.Is(err, ErrJWKSFetch) || fetches.Load() != n {
		t.Fatalf("negative cache: err %v, fetches %d→%d", err, n, fetches.Load())
	}
	down.Store(0)
	clock = clock.Add(2 * failedRefetch)
	if err := verify(k2); err != nil {
		t.Fatalf("server back: %v", err)
	}
}

func TestCacheUnreachable(t *testing.T) {
	c := NewCache(CacheOptions{})
	defer c.Close()
	// 127.0.0.1:1 refuses connections.
	_, err := c.Keys(context.Background(), Remote{URI: "http://127.0.0.1:1/jwks", Timeout: time.Second})
	if !errors.Is(err, ErrJWKSFetch) {
		t.Fatalf("err = %v, want ErrJWKSFetch", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := newEC(b, "k1")
	keys := jwks(k)
	tok := sign(b, k, good())
	p := Params{Issuer: "https://issuer.example", Audiences: []string{"bookinfo"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(tok, keys, p, now); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	k := newEC(f, "k1")
	keys := jwks(k)
	f.Add(sign(f, k, good()))
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{}`) + ".")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		_, _ = Peek(tok)
		if v, err := Verify(tok, keys, Params{}, now); err == nil && v == nil {
			t.Fatal("nil token without error")
		}
	})
}
