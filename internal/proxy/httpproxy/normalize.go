package httpproxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// pathVerdict is what path normalization decided.
type pathVerdict uint8

const (
	pathOK       pathVerdict = iota // go on with the (possibly changed) path
	pathReject                      // answer 400
	pathRedirect                    // redirect to the changed path
)

// normalizePath applies the HCM's path options to p, an escaped path
// (no query), in Envoy's order: escaped slashes, normalize_path (RFC 3986
// section 6.2.2: percent-decoding of unreserved characters, upper-case
// hex, dot-segment removal), then merge_slashes. Paths that do not start
// with "/" (asterisk-form, absolute-form) are left alone.
func normalizePath(p string, o runtime.PathNormalization) (string, pathVerdict) {
	if p == "" || p[0] != '/' {
		return p, pathOK
	}
	verdict := pathOK
	if o.EscapedSlash != runtime.EscapedSlashKeep && hasEscapedSlash(p) {
		switch o.EscapedSlash {
		case runtime.EscapedSlashReject:
			return p, pathReject
		case runtime.EscapedSlashUnescapeRedirect:
			verdict = pathRedirect
		}
		p = unescapeSlashes(p)
	}
	if o.Normalize {
		p = removeDotSegments(decodeUnreserved(p))
	}
	if o.MergeSlashes {
		p = mergeSlashes(p)
	}
	return p, verdict
}

func hasEscapedSlash(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F') ||
			p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C')) {
			return true
		}
	}
	return false
}

// unescapeSlashes turns %2F into "/" and %5C into "\" (then "/", as
// Envoy's normalizer treats a backslash in a path).
func unescapeSlashes(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			switch strings.ToUpper(p[i+1 : i+3]) {
			case "2F", "5C":
				b.WriteByte('/')
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeUnreserved decodes percent-encoded unreserved characters ("%61"
// is "a", "%2E" is ".") and upper-cases the hex of the escapes it keeps.
func decodeUnreserved(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if ok1 && ok2 {
				if c := hi<<4 | lo; unreserved(c) {
					b = append(b, c)
				} else {
					b = append(b, '%', strings.ToUpper(p[i+1 : i+2])[0], strings.ToUpper(p[i+2 : i+3])[0])
				}
				i += 2
				continue
			}
		}
		if p[i] == '%' {
			// A stray '%' is escaped, so that it cannot pair with a decoded
			// character into an escape a second decoder would act on.
			b = append(b, "%25"...)
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// removeDotSegments is RFC 3986 section 5.2.4 on an absolute path; a
// backslash counts as a slash, as in Envoy's normalizer.
func removeDotSegments(p string) string {
	if strings.IndexByte(p, '\\') >= 0 {
		p = strings.ReplaceAll(p, "\\", "/")
	}
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// preRoute applies the connection manager's request edits that come before
// routing and filters: path normalization (which may reject or redirect)
// and x-forwarded-client-cert. false when it answered the request.
func (h *Handler) preRoute(ex *exchange, r *http.Request) bool {
	l := ex.st.l
	applyXFCC(r, l.XFCC)
	o := l.Paths
	if !o.Normalize && !o.MergeSlashes && o.EscapedSlash == runtime.EscapedSlashKeep {
		return true
	}
	orig := r.URL.EscapedPath()
	p, verdict := normalizePath(orig, o)
	switch verdict {
	case pathReject:
		h.localReply(ex, r, http.StatusBadRequest, "", "")
		return false
	case pathRedirect:
		if p != orig {
			if ct := r.Header[hdrContentType]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
				h.localReply(ex, r, http.StatusBadRequest, "", "")
				return false
			}
			loc := p
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			ex.Header()["Location"] = []string{loc}
			ex.WriteHeader(http.StatusTemporaryRedirect)
			return false
		}
	}
	if p != orig {
		unesc, err := url.PathUnescape(p)
		if err != nil {
			h.localReply(ex, r, http.StatusBadRequest, "", "")
			return false
		}
		r.URL.Path, r.URL.RawPath = unesc, ""
		if r.URL.EscapedPath() != p {
			r.URL.RawPath = p
		}
		r.RequestURI = r.URL.RequestURI()
	}
	return true
}
