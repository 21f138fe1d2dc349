package http1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// wireFraming says how a request body goes on the wire.
type wireFraming uint8

const (
	wireNoBody  wireFraming = iota // no body, no framing header (or Content-Length: 0)
	wireLength                     // Content-Length
	wireChunked                    // Transfer-Encoding: chunked (length unknown)
)

// wireFramingOf returns the framing of req's body. A body of unknown
// length (ContentLength -1, or 0 with a non-empty Body as net/http reads
// it) is sent chunked.
func wireFramingOf(req *http.Request) wireFraming {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return wireNoBody
	case req.ContentLength > 0:
		return wireLength
	default:
		return wireChunked
	}
}

// wireSendsZeroLength reports whether a body-less request still carries
// "Content-Length: 0", as net/http sends it for methods that normally
// have a body.
func wireSendsZeroLength(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

var errWireBodyShort = errors.New("http1: request body shorter than its Content-Length")

// wireWriteHead writes req's request line and header block to bw (not
// flushed). Invalid header names or values and an invalid Host are
// errors, as net/http reports them, so that nothing malformed (no CR or
// LF smuggled through a value) reaches the upstream.
func wireWriteHead(bw *bufio.Writer, req *http.Request, f wireFraming, closeConn bool) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("http1: write request: invalid Host %q", host)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validMethod(method) {
		return fmt.Errorf("http1: write request: invalid method %q", method)
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	if err := wireWriteTarget(bw, req); err != nil {
		return err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	wantClose := closeConn || req.Close
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // framing is ours to write
		case "User-Agent":
			// As net/http: only the first value, none when it is empty
			// (ReverseProxy sets "" to suppress Go's default).
			if len(vv) > 0 && vv[0] != "" {
				if err := wireWriteField(bw, k, vv[:1]); err != nil {
					return err
				}
			}
			continue
		case "Connection":
			if wantClose && httpguts.HeaderValuesContainsToken(vv, "close") {
				wantClose = false // already says so
			}
		}
		if err := wireWriteField(bw, k, vv); err != nil {
			return err
		}
	}
	switch f {
	case wireLength:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	case wireChunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !httpguts.ValidTrailerHeader(k) {
					return fmt.Errorf("http1: write request: invalid trailer %q", k)
				}
				if !first {
					bw.WriteByte(',')
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	default:
		if wireSendsZeroLength(method) {
			bw.WriteString("Content-Length: 0\r\n")
		}
	}
	if wantClose {
		bw.WriteString("Connection: close\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// wireWriteTarget writes the origin-form request target
// (url.URL.RequestURI without building the string).
func wireWriteTarget(bw *bufio.Writer, req *http.Request) error {
	u := req.URL
	if method := req.Method; method == http.MethodConnect && u.Path == "" {
		bw.WriteString(u.Host) // authority-form, RFC 9112 section 3.2.3
		return nil
	}
	var path string
	absolute := false
	if u.Opaque != "" {
		path = u.Opaque
		absolute = strings.HasPrefix(path, "//") && u.Scheme != ""
	} else if path = u.EscapedPath(); path == "" {
		path = "/"
	}
	// origin-form, asterisk-form or absolute-form (RFC 9112 section 3.2).
	origin := strings.HasPrefix(path, "/") || path == "*"
	if !(origin || absolute) || !validTarget(path) || !validTarget(u.RawQuery) {
		return fmt.Errorf("http1: write request: invalid request target %q", path)
	}
	if absolute {
		bw.WriteString(u.Scheme)
		bw.WriteByte(':')
	}
	bw.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	return nil
}

// validTarget rejects what would break the request line: controls and
// spaces.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return m != ""
}

// wireWriteField writes one header field line per value.
func wireWriteField(bw *bufio.Writer, k string, vv []string) error {
	if !httpguts.ValidHeaderFieldName(k) {
		return fmt.Errorf("http1: write request: invalid header name %q", k)
	}
	for _, v := range vv {
		if !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("http1: write request: invalid value for header %q", k)
		}
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(textproto.TrimString(v))
		bw.WriteString("\r\n")
	}
	return nil
}

// wireWriteBody copies req's body to bw with framing f and flushes. A
// chunked body is flushed after every chunk, so that a streaming upload
// reaches the upstream as it arrives (net/http does the same).
func wireWriteBody(bw *bufio.Writer, req *http.Request, f wireFraming) error {
	switch f {
	case wireLength:
		n, err := io.CopyN(bw, req.Body, req.ContentLength)
		if err == io.EOF && n < req.ContentLength {
			return errWireBodyShort
		}
		if err != nil {
			return wireBodyErr(err)
		}
	case wireChunked:
		if err := wireWriteChunked(bw, req); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// wireBodyErr marks an error of the request body (the downstream), as
// distinct from one of the upstream connection.
func wireBodyErr(err error) error { return &requestBodyError{err} }

// requestBodyError is a failure to read the request body: the downstream
// went away, not the upstream.
type requestBodyError struct{ err error }

func (e *requestBodyError) Error() string { return "http1: read request body: " + e.err.Error() }
func (e *requestBodyError) Unwrap() error { return e.err }

func wireWriteChunked(bw *bufio.Writer, req *http.Request) error {
	bp := wireCopyBuffers.Get().(*[]byte)
	defer wireCopyBuffers.Put(bp)
	buf := *bp
	var num [16]byte
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendUint(num[:0], uint64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return wireBodyErr(rerr)
		}
	}
	bw.WriteString("0\r\n")
	for k, vv := range req.Trailer {
		if err := wireWriteField(bw, k, vv); err != nil {
			return err
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}
