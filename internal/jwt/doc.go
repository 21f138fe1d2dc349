// Package jwt verifies JSON Web Tokens as Envoy's jwt_authn filter does,
// using go-jose for all cryptography, and keeps JWKS documents fetched from
// remote URIs.
//
//	token ──1 parse (compact JWS; alg must be one Envoy supports, never "none")
//	      ──2 pick keys: the JWKS keys whose kid (when the token has one) and
//	          alg (when the key states one) agree with the header
//	      ──3 verify the signature with go-jose (a key of the wrong type for
//	          the alg fails here)
//	      ──4 check iss, aud, exp and nbf (with Params.ClockSkew, 60s as
//	          Envoy) ──▶ *Token (claims and the raw payload)
//
// Errors are the Envoy statuses (ErrExpired, ErrVerification, ...) whose
// Error text is the body Envoy sends with its 401, so the HTTP filter can
// answer exactly as Envoy does.
//
// Cache fetches JWKS documents on demand, shares one fetch among concurrent
// callers, keeps them for the provider's cache duration and fails closed:
// when a document cannot be fetched, tokens that need it are rejected.
package jwt
