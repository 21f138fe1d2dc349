package http1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// serverPendingSize is how much body a response holds before its framing
// is decided: a handler that finishes within it gets a Content-Length
// (net/http holds 2 KiB).
const serverPendingSize = 4 << 10

// serverResponse is the http.ResponseWriter of one request. Its methods
// run on the handler's goroutine, or one at a time from another
// (httputil.ReverseProxy flushes from a timer goroutine under its own
// lock), as http.ResponseWriter requires; only the 100 Continue written
// by the body reader races with them, under cmu.
type serverResponse struct {
	sc   *serverConn
	req  *http.Request
	ctx  requestContext // req's context
	body serverBody

	status      int
	cl          int64 // Content-Length in force; -1: none (yet)
	written     int64 // body bytes the handler wrote
	pend        *[]byte
	wroteHeader bool // the final status is set
	committed   bool // status line and header are in the conn's buffer
	chunked     bool
	noBody      bool // HEAD, 1xx, 204, 304: body bytes are not sent
	closeAfter  bool
	hijacked    bool
	handlerDone bool
	fullDuplex  bool
	trailers    []string // declared with "Trailer"

	cmu           sync.Mutex // guards canContinue and the conn's buffer against it
	canContinue   bool
	wroteContinue bool
	expectingBody bool // Expect: 100-continue with a body
}

var (
	_ http.ResponseWriter = (*serverResponse)(nil)
	_ http.Flusher        = (*serverResponse)(nil)
	_ http.Hijacker       = (*serverResponse)(nil)
)

func newServerResponse(sc *serverConn, req *http.Request) *serverResponse {
	clear(sc.hdr)
	w := &serverResponse{sc: sc, req: req, cl: -1}
	w.ctx.values = sc.values
	w.body.w = w
	if req.Body != nil && req.Body != http.NoBody {
		w.body.rc = req.Body
		req.Body = &w.body
		if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
			w.canContinue, w.expectingBody = true, true
		}
	} else {
		w.body.sawEOF.Store(true)
	}
	return w
}

func (w *serverResponse) Header() http.Header { return w.sc.hdr }

// WriteHeader sends 1xx responses at once and records the final status;
// the header goes out with the first body bytes, a flush or the end.
func (w *serverResponse) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("http1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || !bodyAllowed(code)
	if v := w.sc.hdr["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.sc.hdr, "Content-Length")
		}
	}
}

// writeInformational sends a 1xx response with the current header.
func (w *serverResponse) writeInformational(code int) {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	if code == http.StatusContinue {
		w.canContinue, w.wroteContinue = false, true
	}
	bw := w.sc.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code)
	for k, vv := range w.sc.hdr {
		if k != "Content-Length" && k != "Transfer-Encoding" {
			writeField(bw, k, vv)
		}
	}
	bw.WriteString("\r\n")
	_ = bw.Flush()
}

// sendContinue answers Expect: 100-continue, once, before the response.
func (w *serverResponse) sendContinue() {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	if !w.canContinue {
		return
	}
	w.canContinue, w.wroteContinue = false, true
	w.sc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = w.sc.bw.Flush()
}

func (w *serverResponse) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl && w.req.Method != http.MethodHead {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.cl < 0 && w.pendLen()+len(p) <= serverPendingSize {
			w.hold(p)
			return len(p), nil
		}
		w.commitPending(false, p)
	}
	return w.writeBody(p)
}

// WriteString avoids a copy for io.WriteString.
func (w *serverResponse) WriteString(s string) (int, error) {
	if w.committed && !w.chunked && !w.noBody && w.cl >= 0 && w.written+int64(len(s)) <= w.cl {
		w.written += int64(len(s))
		return w.sc.bw.WriteString(s)
	}
	return w.Write([]byte(s))
}

func (w *serverResponse) pendLen() int {
	if w.pend == nil {
		return 0
	}
	return len(*w.pend)
}

func (w *serverResponse) hold(p []byte) {
	if w.pend == nil {
		w.pend = w.sc.srv.getPending()
	}
	*w.pend = append(*w.pend, p...)
}

// commitPending writes the header, deciding the framing with the held
// body (and next, the first bytes past it), then the held body.
func (w *serverResponse) commitPending(final bool, next []byte) {
	var held []byte
	if w.pend != nil {
		held = *w.pend
	}
	sniff := held
	if len(sniff) == 0 {
		sniff = next
	}
	w.commit(final, sniff)
	if len(held) > 0 {
		_, _ = w.writeBody(held)
	}
	if w.pend != nil {
		*w.pend = (*w.pend)[:0]
	}
}

func (w *serverResponse) writeBody(p []byte) (int, error) {
	if w.noBody {
		return len(p), nil
	}
	bw := w.sc.bw
	if w.chunked {
		bw.Write(append(strconv.AppendUint(bw.AvailableBuffer(), uint64(len(p)), 16), '\r', '\n'))
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return bw.Write(p)
}

// Flush sends what is buffered, the header first if it was not.
func (w *serverResponse) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error (http.ResponseController).
func (w *serverResponse) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commitPending(false, nil)
	}
	return w.sc.bw.Flush()
}

// SetReadDeadline is for http.ResponseController.
func (w *serverResponse) SetReadDeadline(t time.Time) error { return w.sc.rwc.SetReadDeadline(t) }

// SetWriteDeadline is for http.ResponseController.
func (w *serverResponse) SetWriteDeadline(t time.Time) error { return w.sc.rwc.SetWriteDeadline(t) }

// EnableFullDuplex is for http.ResponseController: the request body is
// left alone while the response is written.
func (w *serverResponse) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// errHijackDone is Hijack after the handler returned.
var errHijackDone = errors.New("http1: hijack after the handler returned")

// Hijack hands the connection to the handler: buffered request bytes
// stay readable through the returned reader; what the response wrote so
// far is flushed first.
func (w *serverResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.handlerDone {
		return nil, nil, errHijackDone
	}
	sc := w.sc
	sc.watch.stop()
	if !sc.state.CompareAndSwap(connActive, connHijacked) {
		return nil, nil, net.ErrClosed
	}
	w.hijacked = true
	sc.srv.track(sc, false)
	if w.wroteHeader && !w.committed {
		w.commitPending(false, nil)
	}
	if err := sc.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.releasePending()
	return sc.rwc, bufio.NewReadWriter(sc.br, sc.bw), nil
}

// finish completes the response after the handler returned and reports
// whether the connection may serve another request.
func (w *serverResponse) finish() bool {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commitPending(true, nil)
	}
	bw := w.sc.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	}
	keep := !w.closeAfter && w.sc.werr == nil
	if w.cl >= 0 && w.written != w.cl && !w.noBody {
		keep = false // short: the client would be out of step
	}
	if keep && w.body.complete() {
		w.sc.holdResponse()
	}
	_ = bw.Flush()
	w.releasePending()
	keep = keep && w.sc.werr == nil
	return w.body.finish(keep) && keep
}

// abort ends a response whose handler panicked: nothing more is sent.
func (w *serverResponse) abort() {
	w.handlerDone = true
	w.body.finish(false)
	w.releasePending()
}

func (w *serverResponse) releasePending() {
	if w.pend != nil {
		w.sc.srv.putPending(w.pend)
		w.pend = nil
	}
}

// commit writes the status line and header to the conn's buffer and
// decides the framing, as net/http's chunkWriter.writeHeader does. final:
// the handler is done and the held body is all of it. sniff is the start of
// the body for a missing Content-Type.
func (w *serverResponse) commit(final bool, sniff []byte) {
	w.committed = true
	if w.expectingBody {
		w.cmu.Lock()
		w.canContinue = false
		w.cmu.Unlock()
	}
	h := w.sc.hdr
	code := w.status
	isHEAD := w.req.Method == http.MethodHead
	is11 := w.req.ProtoAtLeast(1, 1)
	te := first(h["Transfer-Encoding"])
	hasTE := te != ""
	connHdr := h["Connection"]
	hasTrailers := len(h["Trailer"]) > 0
	for _, v := range h["Trailer"] {
		w.declareTrailers(v)
	}
	bw := w.sc.bw
	writeStatusLine(bw, is11, code)
	// Handler fields first; the framing fields follow once decided.
	for k, vv := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			hasTrailers = true
			continue
		}
		if code == http.StatusNotModified && k == "Content-Type" {
			continue
		}
		writeField(bw, k, vv)
	}
	bodyOK := bodyAllowed(code)
	if final && !hasTrailers && !hasTE && bodyOK && w.cl < 0 && (!isHEAD || w.written > 0) {
		w.cl = w.written
	}
	keepAliveHdr := false
	wants10KeepAlive := !is11 && w.req.ProtoMajor == 1 && httpguts.HeaderValuesContainsToken(w.req.Header["Connection"], "keep-alive")
	if wants10KeepAlive && (isHEAD || w.cl >= 0 || !bodyOK) {
		keepAliveHdr = connHdr == nil
	} else if !is11 || w.req.Close {
		w.closeAfter = true
	}
	if httpguts.HeaderValuesContainsToken(connHdr, "close") {
		w.closeAfter = true
	}
	if w.expectingBody && !w.body.sawEOF.Load() {
		w.closeAfter = true // the client may never send the body
	}
	if !w.closeAfter && !w.fullDuplex && w.body.tooBigToDrain() {
		w.closeAfter = true
	}
	if bodyOK {
		_, haveType := h["Content-Type"]
		if !haveType && !hasTE && len(sniff) > 0 && first(h["Content-Encoding"]) == "" {
			writeFieldValue(bw, "Content-Type", http.DetectContentType(sniff))
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(w.sc.srv.dateValue())
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && hasTE && te != "identity" {
		w.cl = -1 // net/http ignores a Content-Length beside chunked
	}
	switch {
	case isHEAD || !bodyOK || code == http.StatusNoContent:
		if w.cl >= 0 && bodyOK {
			writeCL(bw, w.cl) // a HEAD answer may tell the GET's length
		}
	case w.cl >= 0:
		writeCL(bw, w.cl)
	case is11 && hasTE && te == "identity":
		w.closeAfter = true
	case is11:
		w.chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the close ends it
	}
	switch {
	case w.closeAfter && !httpguts.HeaderValuesContainsToken(connHdr, "close") &&
		!(code == http.StatusSwitchingProtocols && h["Upgrade"] != nil):
		if is11 {
			bw.WriteString("Connection: close\r\n")
		}
	case keepAliveHdr:
		bw.WriteString("Connection: keep-alive\r\n")
	case connHdr != nil:
		writeField(bw, "Connection", connHdr)
	}
	bw.WriteString("\r\n")
}

// declareTrailers records the fields of a "Trailer" header value.
func (w *serverResponse) declareTrailers(v string) {
	for f := range strings.SplitSeq(v, ",") {
		f = http.CanonicalHeaderKey(textproto.TrimString(f))
		switch f {
		case "", "Transfer-Encoding", "Trailer", "Content-Length":
			continue
		}
		w.trailers = append(w.trailers, f)
	}
}

// writeTrailers writes the declared trailer fields and those set with
// http.TrailerPrefix.
func (w *serverResponse) writeTrailers() {
	bw, h := w.sc.bw, w.sc.hdr
	for _, k := range w.trailers {
		if vv := h[k]; len(vv) > 0 {
			writeField(bw, k, vv)
		}
	}
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			writeField(bw, http.CanonicalHeaderKey(name), vv)
		}
	}
}

func first(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// bodyAllowed reports whether a response with this status may have a
// body (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.Write(append(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10), ' '))
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

func writeCL(bw *bufio.Writer, n int64) {
	bw.WriteString("Content-Length: ")
	// AvailableBuffer: appending there costs no allocation.
	bw.Write(append(strconv.AppendInt(bw.AvailableBuffer(), n, 10), '\r', '\n'))
}

// writeField writes one line per value; as net/http, invalid names are
// dropped and line breaks in values become spaces.
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		writeFieldValue(bw, k, v)
	}
}

func writeFieldValue(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

func (s *Server) getPending() *[]byte {
	if p, ok := s.pendingPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, serverPendingSize)
	return &b
}

func (s *Server) putPending(p *[]byte) {
	*p = (*p)[:0]
	s.pendingPool.Put(p)
}

// continueSent reports whether 100 Continue went out.
func (w *serverResponse) continueSent() bool {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	return w.wroteContinue
}
