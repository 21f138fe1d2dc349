package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fastHead runs the fast path on data as the server sees it: whatever one
// read brought into the buffer.
func fastHead(h *requestHead, data []byte) (*http.Request, *bufio.Reader) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	_, _ = br.Peek(min(len(data), 4096))
	return h.parse(br, defaultMaxHeaderBytes), br
}

// checkAgainstNetHTTP fails when the fast path accepted data and the
// request, its body or what follows differ from http.ReadRequest's.
func checkAgainstNetHTTP(t *testing.T, h *requestHead, data []byte) bool {
	t.Helper()
	got, br := fastHead(h, data)
	if got == nil {
		return false
	}
	wbr := bufio.NewReader(bytes.NewReader(data))
	want, err := http.ReadRequest(wbr)
	if err != nil {
		t.Fatalf("fast path accepted %q, http.ReadRequest: %v", data, err)
	}
	type view struct {
		Method, Proto, Host, RequestURI string
		Path, RawPath, RawQuery, URL    string
		ForceQuery, Close               bool
		ProtoMajor, ProtoMinor          int
		ContentLength                   int64
		Header                          http.Header
		TransferEncoding                []string
		Trailer                         http.Header
		Body                            string
		Rest                            string
		NoBody                          bool
	}
	see := func(r *http.Request, br *bufio.Reader) view {
		body, _ := io.ReadAll(r.Body)
		rest, _ := io.ReadAll(br)
		return view{
			Method: r.Method, Proto: r.Proto, Host: r.Host, RequestURI: r.RequestURI,
			Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, URL: r.URL.String(),
			ForceQuery: r.URL.ForceQuery, Close: r.Close, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
			ContentLength: r.ContentLength, Header: r.Header, TransferEncoding: r.TransferEncoding,
			Trailer: r.Trailer, Body: string(body), Rest: string(rest), NoBody: r.Body == http.NoBody,
		}
	}
	if diff := cmp.Diff(see(want, wbr), see(got, br)); diff != "" {
		t.Fatalf("fast path on %q differs from http.ReadRequest (-want +got):\n%s", data, diff)
	}
	return true
}

func TestRequestHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"POST /echo?x=1&y=%20 HTTP/1.1\r\nHost: svc:8080\r\nContent-Length: 3\r\nUser-Agent: fortio\r\n\r\nabcGET", true},
		{"GET /a;b,c:d@e$f HTTP/1.1\r\nhost: a\r\nx-request-id: 1\r\nX-Two: 1\r\nx-two: 2\r\n\r\n", true},
		{"GET /? HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", true},
		{"GET /?? HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nEmpty:\r\nSpaces:  v  \t\r\n\r\n", true},
		// Declined: net/http decides these.
		{"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
		{"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET /a!b HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"GET / HTTP/1.1\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", false},
		{"GET / HTTP/1.1\nHost: a\n\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nBad Key: v\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a", false},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	} {
		var h requestHead
		if got := checkAgainstNetHTTP(t, &h, []byte(tc.in)); got != tc.fast {
			t.Errorf("%q: fast path took it: %v, want %v", tc.in, got, tc.fast)
		}
	}
}

// TestRequestHeadReuse: a connection's second, identical head reuses the
// first one's strings, a different one does not, and neither disturbs
// what the first request's values were.
func TestRequestHeadReuse(t *testing.T) {
	var h requestHead
	a := "GET /a HTTP/1.1\r\nHost: h\r\nX-Id: 1\r\n\r\n"
	if !checkAgainstNetHTTP(t, &h, []byte(a)) {
		t.Fatal("fast path declined")
	}
	first := h.req.Header["X-Id"]
	if !checkAgainstNetHTTP(t, &h, []byte(a)) {
		t.Fatal("fast path declined the repeat")
	}
	if !checkAgainstNetHTTP(t, &h, []byte(strings.Replace(a, "X-Id: 1", "X-Id: 2", 1))) {
		t.Fatal("fast path declined the variant")
	}
	if first[0] != "1" || h.req.Header["X-Id"][0] != "2" {
		t.Fatalf("values %q then %q", first, h.req.Header["X-Id"])
	}
	allocs := testing.AllocsPerRun(100, func() {
		br := bufio.NewReaderSize(strings.NewReader(a), 4096)
		_, _ = br.Peek(len(a))
		if h.parse(br, defaultMaxHeaderBytes) == nil {
			t.Fatal("declined")
		}
	})
	// bufio.NewReaderSize and the reader: 2; the head itself: the value
	// slices only.
	if allocs > 4 {
		t.Fatalf("%v allocations per repeated head, want at most 4", allocs)
	}
}

// FuzzRequestHead: whatever the fast path accepts, http.ReadRequest reads
// the same way.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /echo?x=1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 3\r\nx-y: z\r\n\r\nabcGET / HTTP/1.1\r\n",
		"GET /a;b HTTP/1.1\r\nhost: a\r\nconnection: close\r\nA: 1\r\na: 2\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h requestHead
		if checkAgainstNetHTTP(t, &h, data) && !checkAgainstNetHTTP(t, &h, data) {
			t.Fatalf("declined %q when repeated", data) // the second read fills from the cache
		}
	})
}
