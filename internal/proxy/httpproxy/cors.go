package httpproxy

import (
	"net/http"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// corsFilter is envoy.filters.http.cors; the policy is the route's (or its
// virtual host's) typed_per_filter_config entry.
type corsFilter struct{}

func (corsFilter) decode(fx *filterCtx) bool {
	o := fx.override()
	if o == nil || o.CORS == nil || o.CORS.ShadowOnly {
		return true
	}
	p := o.CORS
	origin := fx.r.Header.Get("Origin")
	if origin == "" || !originAllowed(p, origin) {
		return true // not a CORS request, or not ours to allow: pass it on
	}
	hd := fx.ex.Header()
	preflight := fx.r.Method == http.MethodOptions && fx.r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		hd.Set("Access-Control-Allow-Origin", origin)
		if p.AllowMethods != "" {
			hd.Set("Access-Control-Allow-Methods", p.AllowMethods)
		}
		if p.AllowHeaders != "" {
			hd.Set("Access-Control-Allow-Headers", p.AllowHeaders)
		}
		if p.MaxAge != "" {
			hd.Set("Access-Control-Max-Age", p.MaxAge)
		}
		if p.AllowCredentials {
			hd.Set("Access-Control-Allow-Credentials", "true")
		}
		if p.AllowPrivateNetwork && fx.r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			hd.Set("Access-Control-Allow-Private-Network", "true")
		}
		fx.ex.WriteHeader(http.StatusOK)
		return false
	}
	// A simple or actual request: the headers ride on the upstream's
	// response (the reverse proxy adds to what is set here).
	hd.Set("Access-Control-Allow-Origin", origin)
	if p.AllowCredentials {
		hd.Set("Access-Control-Allow-Credentials", "true")
	}
	if p.ExposeHeaders != "" {
		hd.Set("Access-Control-Expose-Headers", p.ExposeHeaders)
	}
	return true
}

func originAllowed(p *runtime.CORSPolicy, origin string) bool {
	for i := range p.AllowOrigins {
		if m := &p.AllowOrigins[i]; (m.Kind == runtime.MatchExact && m.Value == "*") || stringMatches(m, origin) {
			return true
		}
	}
	return false
}
