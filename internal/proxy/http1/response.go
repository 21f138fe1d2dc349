package http1

import (
	"bufio"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// responseHead parses the common response head the way requestHead parses
// requests: all of it buffered, HTTP/1.1, a final status other than 204
// and 304 to a request other than HEAD, a Content-Length, no
// Transfer-Encoding, Trailer, Pragma or "Connection: close". Anything
// else is left to http.ReadResponse (FuzzResponseHead checks that both
// agree). The response and its header map are new each time (the
// forwarder holds them after the connection went back to the pool)
// unless the caller lends its own (Client.RoundTripInto); the head's
// string is reused while the upstream repeats it byte for byte.
type responseHead struct {
	fields headCache // the last head scanned
}

// parse returns the response at the start of br, or nil (consuming
// nothing) when it is not one the fast path handles. A non-nil into
// receives it, its Header map reused.
func (h *responseHead) parse(br *bufio.Reader, req *http.Request, into *http.Response) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	s, n, ok := bufferedHead(br, clientMaxHeaderBytes, h.fields.of)
	if !ok {
		return nil
	}
	line, rest, _ := cutCRLF(s)
	proto, status, _ := cut(line, ' ')
	if proto != "HTTP/1.1" || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return nil
	}
	code := 0
	for i := range 3 {
		c := status[i]
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	var hdr http.Header
	if into != nil && into.Header != nil {
		hdr = into.Header
		clear(hdr)
	} else {
		hdr = make(http.Header, strings.Count(rest, "\n"))
	}
	var f fields
	if !h.fields.fill(s, rest, hdr, false, &f) || hdr["Content-Length"] == nil ||
		httpguts.HeaderValuesContainsToken(hdr["Connection"], "close") {
		return nil
	}
	resp := into
	if resp == nil {
		resp = new(http.Response)
	}
	*resp = http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          http.NoBody,
		ContentLength: f.length,
		Request:       req,
	}
	if f.length > 0 {
		resp.Body = &bodyReader{r: br, n: f.length}
	}
	_, _ = br.Discard(n)
	return resp
}
