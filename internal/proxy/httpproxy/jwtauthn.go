package httpproxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/internal/jwt"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// jwtFilter is envoy.filters.http.jwt_authn.
type jwtFilter struct {
	cfg       *runtime.JWTAuthn
	providers map[string]*jwtProvider
	names     []string // provider names, sorted
	rules     []jwtRule
	cache     *jwt.Cache
}

type jwtProvider struct {
	cfg   *runtime.JWTProvider
	local *jose.JSONWebKeySet // parsed local_jwks; nil for remote
}

type jwtRule struct {
	match matcher
	req   *runtime.JWTRequirement
}

func newJWTFilter(cfg *runtime.JWTAuthn, cache *jwt.Cache) *jwtFilter {
	f := &jwtFilter{cfg: cfg, providers: map[string]*jwtProvider{}, cache: cache}
	for name, p := range cfg.Providers {
		jp := &jwtProvider{cfg: p}
		if len(p.LocalJWKS) > 0 {
			jp.local, _ = jwt.ParseJWKS(p.LocalJWKS) // validated by compile
		}
		f.providers[name] = jp
	}
	f.names = slices.Sorted(maps.Keys(f.providers))
	for _, r := range cfg.Rules {
		f.rules = append(f.rules, jwtRule{match: compileMatch(r.Match), req: r.Requirement})
	}
	return f
}

// jwtRun is one request's verification state: each provider is tried at
// most once whatever the requirement tree.
type jwtRun struct {
	f       *jwtFilter
	fx      *filterCtx
	results map[string]error
}

func (f *jwtFilter) decode(fx *filterCtx) bool {
	r := fx.r
	if f.cfg.BypassCORSPreflight && r.Method == http.MethodOptions &&
		r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		return true
	}
	var req *runtime.JWTRequirement
	if o := fx.override(); o != nil && o.JWTRequirement != "" {
		req = f.cfg.RequirementMap[o.JWTRequirement]
	} else {
		path := r.URL.EscapedPath()
		for i := range f.rules {
			if f.rules[i].match.matches(r, path) {
				req = f.rules[i].req
				break
			}
		}
	}
	if req == nil {
		return true
	}
	run := &jwtRun{f: f, fx: fx, results: map[string]error{}}
	err := run.check(req)
	if err == nil {
		return true
	}
	code := http.StatusUnauthorized
	if errors.Is(err, jwt.ErrAudience) {
		code = http.StatusForbidden // Envoy answers 403 for a token for someone else
	}
	msg := err.Error()
	var je *jwt.Error
	if errors.As(err, &je) {
		msg = je.Error()
	}
	fx.ex.Header().Set("Www-Authenticate",
		fmt.Sprintf(`Bearer realm="http://%s%s", error="invalid_token"`, r.Host, r.URL.EscapedPath()))
	fx.reply(code, "", msg)
	return false
}

func (run *jwtRun) check(req *runtime.JWTRequirement) error {
	switch req.Kind {
	case runtime.JWTProviderName:
		return run.verify(req.Provider, req.Audiences)
	case runtime.JWTRequiresAll:
		for _, c := range req.Children {
			if err := run.check(c); err != nil {
				return err
			}
		}
		return nil
	case runtime.JWTRequiresAny:
		var first error
		allowMissing := false
		for _, c := range req.Children {
			switch c.Kind {
			case runtime.JWTAllowMissingOrFailed:
				run.verifyAll()
				return nil
			case runtime.JWTAllowMissing:
				allowMissing = true
				continue
			}
			err := run.check(c)
			if err == nil {
				return nil
			}
			if first == nil && !errors.Is(err, jwt.ErrMissing) {
				first = err
			}
		}
		if first != nil {
			return first
		}
		if allowMissing {
			return nil
		}
		return jwt.ErrMissing
	case runtime.JWTAllowMissing:
		for _, name := range run.f.names {
			if err := run.verify(name, nil); err != nil && !errors.Is(err, jwt.ErrMissing) {
				return err
			}
		}
		return nil
	case runtime.JWTAllowMissingOrFailed:
		run.verifyAll()
		return nil
	}
	return nil
}

func (run *jwtRun) verifyAll() {
	for _, name := range run.f.names {
		_ = run.verify(name, nil)
	}
}

// verify checks the token for provider name, once per request, and on
// success applies the provider's outputs.
func (run *jwtRun) verify(name string, audiences []string) error {
	if err, done := run.results[name]; done {
		return err
	}
	err := run.verifyOnce(name, audiences)
	run.results[name] = err
	return err
}

func (run *jwtRun) verifyOnce(name string, audiences []string) error {
	p := run.f.providers[name]
	if p == nil {
		return jwt.ErrMissing
	}
	r := run.fx.r
	raw, loc := extractToken(r, p.cfg)
	if raw == "" {
		return jwt.ErrMissing
	}
	keys := p.local
	if keys == nil && p.cfg.Remote != nil {
		if p.cfg.Issuer != "" {
			// Do not fetch a JWKS for a token another issuer signed.
			if iss, err := jwt.Peek(raw); err != nil {
				return err
			} else if iss != p.cfg.Issuer {
				return jwt.ErrIssuer
			}
		}
		var err error
		keys, err = run.f.cache.Keys(r.Context(), jwt.Remote{
			URI: p.cfg.Remote.URI, Timeout: p.cfg.Remote.Timeout, CacheDuration: p.cfg.Remote.CacheDuration,
		})
		if err != nil {
			return jwt.ErrJWKSFetch
		}
	}
	if audiences == nil {
		audiences = p.cfg.Audiences
	}
	tok, err := jwt.Verify(raw, keys, jwt.Params{Issuer: p.cfg.Issuer, Audiences: audiences, ClockSkew: p.cfg.ClockSkew}, time.Now())
	if err != nil {
		return err
	}
	run.apply(p.cfg, tok, loc)
	return nil
}

// tokenLocation says where a token was found, so that it can be removed.
type tokenLocation struct {
	header string // canonical header name; "" when found in a parameter
	param  string
}

// extractToken finds p's token: from_headers (with value_prefix),
// from_params, from_cookies; with none configured, Envoy's defaults
// (Authorization: Bearer and the access_token parameter).
func extractToken(r *http.Request, p *runtime.JWTProvider) (string, tokenLocation) {
	headers, params := p.FromHeaders, p.FromParams
	if len(headers) == 0 && len(params) == 0 && len(p.FromCookies) == 0 {
		headers = []runtime.JWTHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		params = []string{"access_token"}
	}
	for _, h := range headers {
		key := http.CanonicalHeaderKey(h.Name)
		for _, v := range r.Header[key] {
			if h.ValuePrefix == "" {
				if v = strings.TrimSpace(v); v != "" {
					return v, tokenLocation{header: key}
				}
				continue
			}
			// Envoy finds the prefix anywhere and takes what follows up to
			// a comma or space.
			i := strings.Index(v, h.ValuePrefix)
			if i < 0 {
				continue
			}
			tok := v[i+len(h.ValuePrefix):]
			if j := strings.IndexAny(tok, ", "); j >= 0 {
				tok = tok[:j]
			}
			if tok != "" {
				return tok, tokenLocation{header: key}
			}
		}
	}
	if len(params) > 0 && r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, name := range params {
			if v := q.Get(name); v != "" {
				return v, tokenLocation{param: name}
			}
		}
	}
	for _, name := range p.FromCookies {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value, tokenLocation{}
		}
	}
	return "", tokenLocation{}
}

// apply writes a verified token's outputs: the payload into dynamic
// metadata and headers, claims into headers, and strips the token unless
// the provider forwards it.
func (run *jwtRun) apply(p *runtime.JWTProvider, tok *jwt.Token, loc tokenLocation) {
	r := run.fx.r
	if p.PayloadInMetadata != "" {
		if s, err := structpb.NewStruct(tok.Claims); err == nil {
			run.fx.metadata(runtime.FilterJWT).Fields[p.PayloadInMetadata] = structpb.NewStructValue(s)
			if run.fx.req != nil {
				run.fx.req.Metadata = run.fx.md
			}
		}
	}
	if p.ForwardPayloadHeader != "" {
		enc := base64.RawURLEncoding
		if p.PadForwardPayloadHeader {
			enc = base64.URLEncoding
		}
		r.Header.Set(p.ForwardPayloadHeader, enc.EncodeToString(tok.Payload))
	}
	for _, ch := range p.ClaimToHeaders {
		if v, ok := claimString(tok.Claims[ch.Claim]); ok {
			r.Header.Set(ch.Header, v)
		}
	}
	if !p.Forward {
		switch {
		case loc.header != "":
			r.Header.Del(loc.header)
		case loc.param != "":
			q := r.URL.Query()
			q.Del(loc.param)
			r.URL.RawQuery = q.Encode()
		}
	}
	run.fx.req = nil // headers changed: rebuild the RBAC view
}

// claimString renders a claim for a header as Envoy does: strings as is,
// numbers and booleans in JSON form; other types are skipped.
func claimString(v any) (string, bool) {
	switch c := v.(type) {
	case string:
		return c, true
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(c), true
	}
	return "", false
}
