package httpproxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/trellis-mesh/trellis/internal/proxy/lb"
	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// upstreamExchange is the upstream part of one request's state.
type upstreamExchange struct {
	choice  lb.Choice
	cookie  string   // Set-Cookie value for a generated hash cookie
	attempt func()   // releases the current attempt's circuit-breaker slot
	retries []func() // release max_retries slots
}

// choice is ex's load-balancing input; on exchange for brevity in transport.go.
func (ex *exchange) choiceFor() lb.Choice { return ex.up.choice }

func (u *upstreamExchange) release() {
	if u.attempt != nil {
		u.attempt()
		u.attempt = nil
	}
	for _, r := range u.retries {
		r()
	}
	u.retries = nil
}

func (u *upstreamExchange) setCookie(h http.Header) {
	if u.cookie != "" {
		h.Add("Set-Cookie", u.cookie)
	}
}

// releaseAttempt frees the previous attempt's circuit-breaker slot.
func (ex *exchange) releaseAttempt() {
	if ex.up.attempt != nil {
		ex.up.attempt()
		ex.up.attempt = nil
	}
}

func (ex *exchange) addRetryRelease(rel func()) { ex.up.retries = append(ex.up.retries, rel) }

// prepareUpstream computes the request's hash (route hash_policy) and
// starts its mirrors before the request goes upstream.
func (h *Handler) prepareUpstream(ex *exchange, r *http.Request) {
	fwd := ex.route.rt.Forward
	if len(fwd.HashPolicy) > 0 {
		ex.up.choice.Hash, ex.up.choice.HasHash, ex.up.cookie = requestHash(fwd.HashPolicy, r)
	}
	if rc := ex.dest.up.ext.rc; rc != nil && rc.LB == runtime.OriginalDst {
		ex.up.choice.Dest = r.Host
		if hn := rc.LBConfig.OriginalDstHeader; hn != "" {
			if v := r.Header.Get(hn); v != "" {
				ex.up.choice.Dest = v
			}
		}
	}
	if len(fwd.Mirrors) > 0 {
		h.startMirrors(ex, r)
	}
}

// requestHash evaluates hash policies as Envoy does: each policy that
// yields a value mixes it in (hash = rotl(hash, 1) xor value); a terminal
// policy that yields a value ends evaluation. A cookie policy with a TTL
// generates the cookie when the request has none; cookie is then the
// Set-Cookie value to send back.
func requestHash(policies []runtime.HashPolicy, r *http.Request) (hash uint64, ok bool, cookie string) {
	for _, p := range policies {
		var v string
		var have bool
		switch p.Kind {
		case runtime.HashHeader:
			if vs := headerValues(r, p.Name); len(vs) > 0 {
				v, have = strings.Join(vs, ","), true
			}
		case runtime.HashCookie:
			if c, err := r.Cookie(p.Name); err == nil {
				v, have = c.Value, true
			} else if p.CookieGenerate {
				var b [8]byte
				for i := range b {
					b[i] = byte(rand.Uint32())
				}
				v, have = hex.EncodeToString(b[:]), true
				cookie = generatedCookie(p, v)
			}
		case runtime.HashSourceIP:
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				v, have = host, true
			}
		case runtime.HashQuery:
			if vs, found := r.URL.Query()[p.Name]; found && len(vs) > 0 {
				v, have = vs[0], true
			}
		}
		if !have {
			continue
		}
		x := xxhash.Sum64String(v)
		if ok {
			hash = (hash<<1 | hash>>63) ^ x
		} else {
			hash, ok = x, true
		}
		if p.Terminal {
			break
		}
	}
	return hash, ok, cookie
}

func headerValues(r *http.Request, name string) []string {
	switch name {
	case ":authority", "host":
		return []string{r.Host}
	case ":method":
		return []string{r.Method}
	case ":path":
		return []string{r.URL.RequestURI()}
	}
	return r.Header[http.CanonicalHeaderKey(name)]
}

// generatedCookie is the Set-Cookie value Envoy sends for a generated hash
// cookie: Max-Age from the TTL (none for a session cookie), Path when set,
// HttpOnly.
func generatedCookie(p runtime.HashPolicy, value string) string {
	var b strings.Builder
	b.WriteString(p.Name)
	b.WriteByte('=')
	b.WriteString(value)
	if p.CookieTTL > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(int64(p.CookieTTL.Seconds()), 10))
	}
	if p.CookiePath != "" {
		b.WriteString("; Path=")
		b.WriteString(p.CookiePath)
	}
	b.WriteString("; HttpOnly")
	return b.String()
}
