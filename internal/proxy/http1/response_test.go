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

// checkResponseAgainstNetHTTP fails when the fast path accepted data and
// the response, its body or what follows differ from http.ReadResponse's.
func checkResponseAgainstNetHTTP(t *testing.T, h *responseHead, method string, data []byte) bool {
	t.Helper()
	return checkResponseInto(t, h, method, data, nil)
}

// checkResponseInto is checkResponseAgainstNetHTTP with a lent response.
func checkResponseInto(t *testing.T, h *responseHead, method string, data []byte, into *http.Response) bool {
	t.Helper()
	req := &http.Request{Method: method}
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	_, _ = br.Peek(min(len(data), 4096))
	got := h.parse(br, req, into)
	if got != nil && into != nil && got != into {
		t.Fatal("the lent response was not used")
	}
	if got == nil {
		return false
	}
	wbr := bufio.NewReader(bytes.NewReader(data))
	want, err := http.ReadResponse(wbr, req)
	if err != nil {
		t.Fatalf("fast path accepted %q, http.ReadResponse: %v", data, err)
	}
	type view struct {
		Status, Proto               string
		StatusCode, Major, Minor    int
		Header, Trailer             http.Header
		ContentLength               int64
		Close, Uncompressed, NoBody bool
		TransferEncoding            []string
		Body, Rest                  string
		SameRequest                 bool
	}
	see := func(r *http.Response, br *bufio.Reader) view {
		body, _ := io.ReadAll(r.Body)
		rest, _ := io.ReadAll(br)
		return view{
			Status: r.Status, Proto: r.Proto, StatusCode: r.StatusCode, Major: r.ProtoMajor, Minor: r.ProtoMinor,
			Header: r.Header, Trailer: r.Trailer, ContentLength: r.ContentLength, Close: r.Close,
			Uncompressed: r.Uncompressed, NoBody: r.Body == http.NoBody, TransferEncoding: r.TransferEncoding,
			Body: string(body), Rest: string(rest), SameRequest: r.Request == req,
		}
	}
	if diff := cmp.Diff(see(want, wbr), see(got, br)); diff != "" {
		t.Fatalf("fast path on %q differs from http.ReadResponse (-want +got):\n%s", data, diff)
	}
	return true
}

func TestResponseHead(t *testing.T) {
	for _, tc := range []struct {
		method, in string
		fast       bool
	}{
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDate: x\r\n\r\nabcHTTP/1.1", true},
		{"POST", "HTTP/1.1 503\r\ncontent-length: 0\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nHost: h\r\n\r\n", true},
		{"GET", "HTTP/1.1 201 Created here\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx", true},
		// Declined: net/http decides these.
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
		{"GET", "HTTP/1.1 100 Continue\r\n\r\n", false},
		{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"GET", "HTTP/1.1 200 OK\r\n\r\nuntil close", false},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", false},
		{"GET", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"GET", "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false},
	} {
		var h responseHead
		if got := checkResponseAgainstNetHTTP(t, &h, tc.method, []byte(tc.in)); got != tc.fast {
			t.Errorf("%s %q: fast path took it: %v, want %v", tc.method, tc.in, got, tc.fast)
		}
	}
}

func TestResponseHeadReuse(t *testing.T) {
	var h responseHead
	a := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: 1\r\n\r\nx"
	for range 2 {
		if !checkResponseAgainstNetHTTP(t, &h, "GET", []byte(a)) {
			t.Fatal("declined")
		}
	}
	if !checkResponseAgainstNetHTTP(t, &h, "GET", []byte(strings.Replace(a, "X: 1", "X: 2", 1))) {
		t.Fatal("declined the variant")
	}
	// A lent response is overwritten whole, its header map cleared.
	into := &http.Response{Header: http.Header{"Stale": {"1"}}, Trailer: http.Header{"T": nil}, Close: true}
	hdr := into.Header
	if !checkResponseInto(t, &h, "GET", []byte(a), into) {
		t.Fatal("declined with a lent response")
	}
	if into.Header["Stale"] != nil || into.Trailer != nil || into.Close {
		t.Fatalf("lent response kept old state: %+v", into)
	}
	hdr["Probe"] = []string{"x"}
	if into.Header["Probe"] == nil {
		t.Fatal("the lent header map was not reused")
	}
}

// FuzzResponseHead: whatever the fast path accepts, http.ReadResponse
// reads the same way.
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc",
		"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nx-a: 1\r\nX-A: 2\r\n\r\nHTTP/1.1 200",
	} {
		f.Add("GET", []byte(s))
	}
	f.Fuzz(func(t *testing.T, method string, data []byte) {
		var h responseHead
		if checkResponseAgainstNetHTTP(t, &h, method, data) && !checkResponseAgainstNetHTTP(t, &h, method, data) {
			t.Fatalf("declined %q when repeated", data) // the second read fills from the cache
		}
	})
}
