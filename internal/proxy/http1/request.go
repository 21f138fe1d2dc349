package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// requestHead parses the common request head without net/http's
// allocations: the whole head is already buffered, HTTP/1.1, an
// origin-form target whose path needs no escaping, one Host, at most one
// plain Content-Length and no Transfer-Encoding, Trailer or Pragma
// header, every line ending in CRLF. Anything else is left to
// http.ReadRequest, which then reads the same bytes: the fast path
// either gives what http.ReadRequest would give (FuzzRequestHead checks
// it) or declines without consuming anything.
//
// It is one per connection and reused: the request, its URL and header
// map are valid until the next request is read, as net/http's handler
// contract already requires. Header values are substrings of one string
// per head, and that string is reused while a client repeats the same
// head byte for byte, as keep-alive clients mostly do.
type requestHead struct {
	req  http.Request
	url  url.URL
	hdr  http.Header
	body bodyReader
	// fields holds the last head scanned: a head equal to it reuses its
	// strings and fields.
	fields headCache
}

// maxFastHeaders bounds the header fields the fast path handles.
const maxFastHeaders = 64

// parse reads one request head from br into h.req and returns it, or nil
// (consuming nothing) when the head is not one the fast path handles.
// maxHeader is MaxHeaderBytes: longer heads are declined too.
func (h *requestHead) parse(br *bufio.Reader, maxHeader int) *http.Request {
	s, n, ok := bufferedHead(br, maxHeader, h.fields.of)
	if !ok {
		return nil
	}

	// Request line.
	line, rest, _ := cutCRLF(s)
	method, line, ok1 := cut(line, ' ')
	target, proto, ok2 := cut(line, ' ')
	if !ok1 || !ok2 || proto != "HTTP/1.1" || !validMethod(method) || !plainTarget(target) {
		return nil
	}
	path, query, hasQuery := cut(target, '?')

	if h.hdr == nil {
		h.hdr = make(http.Header, 16)
	}
	clear(h.hdr)
	var f fields
	if !h.fields.fill(s, rest, h.hdr, true, &f) || f.hosts != 1 || !httpguts.ValidHostHeader(f.host) {
		return nil
	}

	h.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	h.req = http.Request{
		Method:        method,
		URL:           &h.url,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.hdr,
		ContentLength: f.length,
		Close:         httpguts.HeaderValuesContainsToken(h.hdr["Connection"], "close"),
		Host:          f.host,
		RequestURI:    target,
		Body:          http.NoBody,
	}
	if f.length > 0 {
		h.body = bodyReader{r: br, n: f.length}
		h.req.Body = &h.body
	}
	_, _ = br.Discard(n)
	return &h.req
}

// bufferedHead returns the head (request or status line and fields, each
// line with its CRLF) at the start of br's buffer, and its length with the
// blank line; ok is false when the head is not all buffered, is longer
// than limit or has bytes the fast paths leave to net/http. A head equal
// to last is last: no allocation.
func bufferedHead(br *bufio.Reader, limit int, last string) (s string, n int, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || end+4 > limit {
		return "", 0, false
	}
	head := buf[:end+2]
	switch {
	case last != "" && last == string(head):
		return last, end + 4, true
	case !plausibleHead(head):
		return "", 0, false
	}
	return string(head), end + 4, true
}

// headCache keeps the fields of the last head scanned, so that a head
// equal to it (a keep-alive client repeating itself) fills the header map
// without scanning and validating its lines again.
type headCache struct {
	of    string  // the head pairs and f describe
	pairs []field // in order, repeats included
	f     fields
}

// field is one header field line, key canonical.
type field struct{ key, value string }

// fill fills the empty map hdr and f from the field lines rest of the
// head s: scanned (fields.scan) unless s is the last head scanned.
func (c *headCache) fill(s, rest string, hdr http.Header, request bool, f *fields) bool {
	if s != c.of || c.of == "" {
		c.of, c.pairs, c.f = "", c.pairs[:0], fields{}
		if !c.f.scan(rest, request, &c.pairs) {
			return false
		}
		c.of = s
	}
	*f = c.f
	put(hdr, c.pairs)
	return true
}

// put adds pairs to hdr as textproto does, values sharing one array; each
// key's slice is capped so that an append copies.
func put(hdr http.Header, pairs []field) {
	vals := make([]string, 0, len(pairs))
	for _, p := range pairs {
		if old, ok := hdr[p.key]; ok {
			hdr[p.key] = append(old[:len(old):len(old)], p.value) // copies: rare
			continue
		}
		vals = append(vals, p.value)
		hdr[p.key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// fields is what scan found besides the header map.
type fields struct {
	host   string
	hosts  int
	length int64 // Content-Length; 0 when absent
}

// scan parses the field lines in rest into pairs, as textproto's
// ReadMIMEHeader and net/http's transfer rules would, or returns false
// for what the fast paths leave to net/http: a bad line, more than
// maxFastHeaders fields, more than one Content-Length or a bad one,
// Transfer-Encoding, Trailer, Pragma (net/http adds Cache-Control for
// it). A request's Host goes to f, not pairs, as http.ReadRequest takes it
// out of the header.
func (f *fields) scan(rest string, request bool, pairs *[]field) bool {
	cls := 0
	for rest != "" {
		var line string
		line, rest, _ = cutCRLF(rest)
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		key := canonicalKey(line[:colon])
		if key == "" {
			return false
		}
		v := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(v) {
			return false
		}
		switch key {
		case "Host":
			if request {
				f.host, f.hosts = v, f.hosts+1
				continue
			}
		case "Content-Length":
			n, ok := parseLength(v)
			if !ok || cls > 0 {
				return false
			}
			f.length, cls = n, 1
		case "Transfer-Encoding", "Trailer", "Pragma":
			return false
		}
		if len(*pairs) == maxFastHeaders {
			return false
		}
		*pairs = append(*pairs, field{key, v})
	}
	return true
}

var crlfcrlf = []byte("\r\n\r\n")

// plausibleHead reports whether head has only the bytes a fast-path head
// may have: no bare CR or LF, no other control byte but HTAB, no
// obs-fold line.
func plausibleHead(head []byte) bool {
	for i, c := range head {
		switch {
		case c == '\r':
			if i+1 >= len(head) || head[i+1] != '\n' {
				return false
			}
		case c == '\n':
			if i == 0 || head[i-1] != '\r' {
				return false
			}
			if i+1 < len(head) && (head[i+1] == ' ' || head[i+1] == '\t') {
				return false // obs-fold
			}
		case c < ' ' && c != '\t', c == 0x7f:
			return false
		}
	}
	return true
}

func cutCRLF(s string) (line, rest string, ok bool) {
	if i := strings.Index(s, "\r\n"); i >= 0 {
		return s[:i], s[i+2:], true
	}
	return s, "", false
}

func cut(s string, c byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, c); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// plainTarget reports an origin-form target whose path net/url keeps as
// is (no escapes, no byte it would escape) and whose query is printable
// ASCII without '#'.
func plainTarget(t string) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	inQuery := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case inQuery:
			if c <= ' ' || c >= 0x7f || c == '#' {
				return false
			}
		case c == '?':
			inQuery = true
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			switch c {
			case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
			default:
				return false
			}
		}
	}
	return true
}

// canonicalKey returns k in canonical form (http.CanonicalHeaderKey)
// without allocating when k already is canonical or a common header, or
// "" when k is not a valid field name.
func canonicalKey(k string) string {
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !httpguts.IsTokenRune(rune(c)) {
			return ""
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return k
	}
	if len(k) <= 64 {
		var b [64]byte
		n := copy(b[:], k)
		upper = true
		for i := range n {
			c := b[i]
			if upper && 'a' <= c && c <= 'z' {
				b[i] = c - ('a' - 'A')
			} else if !upper && 'A' <= c && c <= 'Z' {
				b[i] = c + ('a' - 'A')
			}
			upper = c == '-'
		}
		if common, ok := commonKeys[string(b[:n])]; ok {
			return common
		}
	}
	return http.CanonicalHeaderKey(k)
}

// commonKeys are header names clients often send in lower case (HTTP/2
// habits, curl scripts): looking them up saves an allocation each.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Expect", "Host", "If-Modified-Since", "If-None-Match",
		"Origin", "Referer", "Te", "Upgrade", "User-Agent", "X-B3-Parentspanid", "X-B3-Sampled",
		"X-B3-Spanid", "X-B3-Traceid", "X-Envoy-Attempt-Count", "X-Forwarded-For", "X-Forwarded-Proto",
		"X-Request-Id", "Traceparent", "Tracestate", "Grpc-Timeout", "X-Envoy-Original-Dst-Host",
	} {
		m[k] = k
	}
	return m
}()

// trimOWS trims optional whitespace (SP, HTAB) around a field value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// bodyReader is a Content-Length body read from the connection's buffer.
// A connection that ends early is io.ErrUnexpectedEOF, as in net/http.
type bodyReader struct {
	r *bufio.Reader
	n int64 // bytes left
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *bodyReader) Close() error { return nil }
