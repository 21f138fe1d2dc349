package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Error is an Envoy jwt_authn status. Its text is the response body Envoy
// sends for it.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

// Envoy's statuses (source/extensions/filters/http/jwt_authn, jwt_verify_lib).
var (
	ErrMissing       = &Error{"Jwt is missing"}
	ErrBadFormat     = &Error{"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"}
	ErrBadAlg        = &Error{"Jwt header [alg] is not supported"}
	ErrExpired       = &Error{"Jwt is expired"}
	ErrNotYetValid   = &Error{"Jwt not yet valid"}
	ErrIssuer        = &Error{"Jwt issuer is not configured"}
	ErrAudience      = &Error{"Audiences in Jwt are not allowed"}
	ErrVerification  = &Error{"Jwt verification fails"}
	ErrKidAlg        = &Error{"Jwks doesn't have key to match kid or alg from Jwt"}
	ErrJWKSFetch     = &Error{"Jwks remote fetch is failed"}
	ErrJWKSMalformed = &Error{"Jwks is an invalid JSON"}
)

// supportedAlgs are the algorithms Envoy's jwt_verify_lib implements.
var supportedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.HS256, jose.HS384, jose.HS512,
	jose.EdDSA,
}

// DefaultClockSkew is Envoy's default clock_skew_seconds.
const DefaultClockSkew = 60 * time.Second

// Params are what a provider requires of a token beyond its signature.
type Params struct {
	// Issuer, when non-empty, must equal the token's iss.
	Issuer string
	// Audiences, when non-empty, must contain one of the token's aud.
	Audiences []string
	// ClockSkew is allowed on exp and nbf; 0 means DefaultClockSkew.
	ClockSkew time.Duration
}

// Token is a verified token.
type Token struct {
	Claims  map[string]any // the payload; JSON numbers are float64
	Payload []byte         // the payload JSON as signed
	Issuer  string
	Subject string
}

// Peek returns the iss claim of raw without verifying anything, so that a
// caller with several providers can pick the one for the token's issuer.
func Peek(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", ErrBadFormat
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		return "", ErrBadFormat
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", ErrBadFormat
	}
	return c.Iss, nil
}

// Verify checks raw, a compact JWS, against keys and p at time now.
func Verify(raw string, keys *jose.JSONWebKeySet, p Params, now time.Time) (*Token, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, ErrBadFormat
	}
	jws, err := jose.ParseSignedCompact(raw, supportedAlgs)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			return nil, ErrBadAlg
		}
		return nil, ErrBadFormat
	}
	if len(jws.Signatures) != 1 {
		return nil, ErrBadFormat
	}
	hdr := jws.Signatures[0].Header
	candidates := matchingKeys(keys, hdr.KeyID, hdr.Algorithm)
	if len(candidates) == 0 {
		return nil, ErrKidAlg
	}
	var payload []byte
	for _, k := range candidates {
		if b, err := jws.Verify(k.Key); err == nil {
			payload = b
			break
		}
	}
	if payload == nil {
		return nil, ErrVerification
	}
	tok, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := tok.check(p, now); err != nil {
		return nil, err
	}
	return tok, nil
}

// matchingKeys returns the signing keys that may have signed a token with
// kid and alg: Envoy skips keys whose kid or alg differ, and keys whose use
// is not "sig".
func matchingKeys(keys *jose.JSONWebKeySet, kid, alg string) []*jose.JSONWebKey {
	if keys == nil {
		return nil
	}
	var out []*jose.JSONWebKey
	for i := range keys.Keys {
		k := &keys.Keys[i]
		switch {
		case kid != "" && k.KeyID != "" && k.KeyID != kid:
			continue
		case k.Algorithm != "" && k.Algorithm != alg:
			continue
		case k.Use != "" && k.Use != "sig":
			continue
		}
		out = append(out, k)
	}
	return out
}

func parseClaims(payload []byte) (*Token, error) {
	var claims map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, &Error{"Jwt payload is an invalid JSON"}
	}
	t := &Token{Claims: claims, Payload: payload}
	var ok bool
	if v, present := claims["iss"]; present {
		if t.Issuer, ok = v.(string); !ok {
			return nil, &Error{"Jwt payload [iss] field is not a string"}
		}
	}
	if v, present := claims["sub"]; present {
		if t.Subject, ok = v.(string); !ok {
			return nil, &Error{"Jwt payload [sub] field is not a string"}
		}
	}
	for _, k := range [...]string{"exp", "nbf", "iat"} {
		if v, present := claims[k]; present {
			if f, ok := v.(float64); !ok || f < 0 || math.IsInf(f, 0) {
				return nil, &Error{fmt.Sprintf("Jwt payload [%s] field is not an integer", k)}
			}
		}
	}
	if v, present := claims["aud"]; present {
		switch a := v.(type) {
		case string:
		case []any:
			for _, e := range a {
				if _, ok := e.(string); !ok {
					return nil, &Error{"Jwt payload [aud] field is not a string or string list"}
				}
			}
		default:
			return nil, &Error{"Jwt payload [aud] field is not a string or string list"}
		}
	}
	return t, nil
}

func (t *Token) check(p Params, now time.Time) error {
	skew := p.ClockSkew
	if skew <= 0 {
		skew = DefaultClockSkew
	}
	if p.Issuer != "" && t.Issuer != p.Issuer {
		return ErrIssuer
	}
	unix := float64(now.Unix())
	if exp, ok := t.Claims["exp"].(float64); ok && unix > exp+skew.Seconds() {
		return ErrExpired
	}
	if nbf, ok := t.Claims["nbf"].(float64); ok && unix+skew.Seconds() < nbf {
		return ErrNotYetValid
	}
	if len(p.Audiences) > 0 && !slices.ContainsFunc(t.Audiences(), func(a string) bool {
		return slices.ContainsFunc(p.Audiences, func(want string) bool { return normAudience(a) == normAudience(want) })
	}) {
		return ErrAudience
	}
	return nil
}

// Audiences returns the aud claim as a list.
func (t *Token) Audiences() []string {
	switch a := t.Claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ParseJWKS parses a JWKS document. A single JWK or PEM is not accepted.
func ParseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("jwks: %w", errors.Join(ErrJWKSMalformed, err))
	}
	if len(ks.Keys) == 0 {
		return nil, fmt.Errorf("jwks: %w: no keys", ErrJWKSMalformed)
	}
	return &ks, nil
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// normAudience compares audiences as Envoy's jwt_verify_lib does: without
// an http(s) scheme and without a trailing slash.
func normAudience(a string) string {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "https://"), "http://")
	return strings.TrimSuffix(a, "/")
}
