package bookinfo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeMesh stands in for a sidecar's HTTP-proxy listener: it receives the
// apps' proxy-form requests and dispatches on the Host header to the app
// handlers it holds, recording what each service saw.
type fakeMesh struct {
	srv *httptest.Server

	mu       sync.Mutex
	apps     map[string]http.Handler // by host, "reviews:9080"
	received map[string][]http.Header
}

func newFakeMesh(t *testing.T) *fakeMesh {
	t.Helper()
	m := &fakeMesh{apps: map[string]http.Handler{}, received: map[string][]http.Header{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "fake mesh: want a proxy-form request", http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		h := m.apps[r.Host]
		m.received[r.Host] = append(m.received[r.Host], r.Header.Clone())
		m.mu.Unlock()
		if h == nil {
			http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// app builds an app that calls out through the mesh, and registers it under
// its service name unless register is false (a service that is down).
func (m *fakeMesh) app(t *testing.T, name, version string, register bool) http.Handler {
	t.Helper()
	u, err := url.Parse(m.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	h, err := NewHandler(Options{Name: name, Version: version, Transport: tr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewHandler(%s %s): %v", name, version, err)
	}
	if register {
		m.mu.Lock()
		m.apps[name+":9080"] = h
		m.mu.Unlock()
	}
	return h
}

func (m *fakeMesh) seen(host string) []http.Header {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.received[host]
}

func get(t *testing.T, h http.Handler, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestProductPage(t *testing.T) {
	tests := []struct {
		name     string
		reviews  string // version; "" means reviews is down
		details  bool
		ratings  bool
		want     []string
		dontWant []string
	}{
		{name: "reviews v1 no stars", reviews: "v1", details: true, ratings: true,
			want:     []string{"reviews-v1", "The Comedy of Errors", "PublisherA", "Reviewer1"},
			dontWant: []string{"★", ReviewsError, DetailsError}},
		{name: "reviews v2 black stars", reviews: "v2", details: true, ratings: true,
			want:     []string{"reviews-v2", `class="stars black">★★★★★`, `class="stars black">★★★★☆`},
			dontWant: []string{"stars red", RatingsUnavailable}},
		{name: "reviews v3 red stars", reviews: "v3", details: true, ratings: true,
			want:     []string{"reviews-v3", `class="stars red">★★★★★`},
			dontWant: []string{"stars black"}},
		{name: "reviews down", reviews: "", details: true, ratings: true,
			want:     []string{ReviewsError, "PublisherA"},
			dontWant: []string{"reviews-v", "Reviewer1"}},
		{name: "details down", reviews: "v1", details: false, ratings: true,
			want:     []string{DetailsError, "reviews-v1"},
			dontWant: []string{"PublisherA"}},
		{name: "ratings down", reviews: "v3", details: true, ratings: false,
			want:     []string{"reviews-v3", RatingsUnavailable},
			dontWant: []string{"★"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMesh(t)
			pp := m.app(t, ProductPage, "v1", true)
			m.app(t, Details, "v1", tc.details)
			m.app(t, Ratings, "v1", tc.ratings)
			if tc.reviews != "" {
				m.app(t, Reviews, tc.reviews, true)
			}
			rec := get(t, pp, "/productpage", nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200 (a failed dependency must not fail the page)", rec.Code)
			}
			body := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestReviewsCallRatings(t *testing.T) {
	tests := []struct {
		version   string
		wantCalls int
		wantColor string
	}{
		{version: "v1", wantCalls: 0},
		{version: "v2", wantCalls: 1, wantColor: "black"},
		{version: "v3", wantCalls: 1, wantColor: "red"},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			m := newFakeMesh(t)
			m.app(t, Ratings, "v1", true)
			rv := m.app(t, Reviews, tc.version, true)
			rec := get(t, rv, "/reviews/0", map[string]string{"x-request-id": "req-1", EndUserHeader: "jason"})
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			var got ReviewList
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			want := ReviewList{ID: "0", Podname: "reviews-" + tc.version, Reviews: append([]Review(nil), reviewTexts...)}
			if tc.wantColor != "" {
				want.Reviews[0].Rating = &Rating{Stars: 5, Color: tc.wantColor}
				want.Reviews[1].Rating = &Rating{Stars: 4, Color: tc.wantColor}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("reviews answer (-want +got):\n%s", diff)
			}
			calls := m.seen("ratings:9080")
			if len(calls) != tc.wantCalls {
				t.Fatalf("ratings called %d times, want %d", len(calls), tc.wantCalls)
			}
			for _, h := range calls {
				if got := h.Get("x-request-id"); got != "req-1" {
					t.Errorf("ratings saw x-request-id %q, want req-1", got)
				}
				if got := h.Get(EndUserHeader); got != "jason" {
					t.Errorf("ratings saw end-user %q, want jason", got)
				}
			}
		})
	}
}

func TestProductPagePropagatesUser(t *testing.T) {
	tests := []struct {
		name     string
		header   map[string]string
		wantUser string
	}{
		{name: "cookie", header: map[string]string{"Cookie": UserCookie + "=jason", "x-request-id": "abc"}, wantUser: "jason"},
		{name: "end-user header", header: map[string]string{EndUserHeader: "jason", "x-request-id": "abc"}, wantUser: "jason"},
		{name: "anonymous", header: map[string]string{"x-request-id": "abc"}, wantUser: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMesh(t)
			pp := m.app(t, ProductPage, "v1", true)
			m.app(t, Details, "v1", true)
			m.app(t, Reviews, "v1", true)
			rec := get(t, pp, "/productpage", tc.header)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d", rec.Code)
			}
			for _, host := range []string{"details:9080", "reviews:9080"} {
				calls := m.seen(host)
				if len(calls) != 1 {
					t.Fatalf("%s called %d times, want 1", host, len(calls))
				}
				if got := calls[0].Get(EndUserHeader); got != tc.wantUser {
					t.Errorf("%s saw end-user %q, want %q", host, got, tc.wantUser)
				}
				if got := calls[0].Get("x-request-id"); got != "abc" {
					t.Errorf("%s saw x-request-id %q, want abc", host, got)
				}
			}
		})
	}
}

func TestLoginLogout(t *testing.T) {
	m := newFakeMesh(t)
	pp := m.app(t, ProductPage, "v1", true)
	rec := get(t, pp, "/login?username=jason", nil)
	if rec.Code != http.StatusFound {
		t.Fatalf("login status = %d, want 302", rec.Code)
	}
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != UserCookie || c[0].Value != "jason" {
		t.Fatalf("login cookies = %v, want user=jason", c)
	}
	rec = get(t, pp, "/logout", nil)
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("logout cookies = %v, want user cleared", c)
	}
	if rec := get(t, pp, "/login", nil); rec.Code != http.StatusBadRequest {
		t.Errorf("login without username: status %d, want 400", rec.Code)
	}
}

func TestEndpoints(t *testing.T) {
	m := newFakeMesh(t)
	pp := m.app(t, ProductPage, "v1", true)
	m.app(t, Details, "v1", true)
	m.app(t, Reviews, "v2", true)
	m.app(t, Ratings, "v1", true)
	tests := []struct {
		name, app, path string
		wantStatus      int
		wantSub         string
	}{
		{"productpage health", ProductPage, "/health", 200, "productpage is healthy"},
		{"products", ProductPage, "/api/v1/products", 200, "The Comedy of Errors"},
		{"product details", ProductPage, "/api/v1/products/0", 200, `"ISBN-10":"1234567890"`},
		{"product reviews", ProductPage, "/api/v1/products/0/reviews", 200, `"podname":"reviews-v2"`},
		{"product ratings", ProductPage, "/api/v1/products/0/ratings", 200, `"Reviewer1":5`},
		{"bad id", ProductPage, "/api/v1/products/x", 400, "numeric"},
		{"details", Details, "/details/7", 200, `"id":7`},
		{"details bad id", Details, "/details/-1", 400, "numeric"},
		{"ratings", Ratings, "/ratings/0", 200, `"Reviewer2":4`},
		{"reviews health", Reviews, "/health", 200, "reviews is healthy"},
		{"static", ProductPage, "/static/style.css", 200, ".stars"},
		{"index", ProductPage, "/", 200, "/productpage"},
		{"unknown", Details, "/nope", 404, ""},
	}
	handlers := map[string]http.Handler{ProductPage: pp}
	for _, name := range []string{Details, Reviews, Ratings} {
		m.mu.Lock()
		handlers[name] = m.apps[name+":9080"]
		m.mu.Unlock()
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, handlers[tc.app], tc.path, nil)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.wantSub) {
				t.Errorf("body lacks %q: %s", tc.wantSub, rec.Body)
			}
		})
	}
}

func TestNewHandlerRejects(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no name", Options{}},
		{"unknown app", Options{Name: "shipping"}},
		{"unknown version", Options{Name: Reviews, Version: "v4"}},
		{"details has one version", Options{Name: Details, Version: "v2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHandler(tc.o); err == nil {
				t.Fatal("NewHandler succeeded, want an error")
			}
		})
	}
}

func TestServe(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Options{Name: Ratings})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, lis, h) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + lis.Addr().String() + "/ratings/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Reviewer1") {
		t.Fatalf("GET /ratings/0 = %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// FuzzProductPage feeds arbitrary reviews answers to productpage: the page
// must always render (200), whatever a dependency sends.
func FuzzProductPage(f *testing.F) {
	f.Add([]byte(`{"id":"0","podname":"reviews-v3","reviews":[{"reviewer":"a","text":"b","rating":{"stars":9,"color":"red"}}]}`))
	f.Add([]byte(`{"reviews":[{"rating":{"stars":-3}}]}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"podname":"<script>alert(1)</script>"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		reviews := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
		tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			if r.URL.Host == "reviews:9080" {
				reviews.ServeHTTP(rec, r)
			} else {
				rec.WriteHeader(http.StatusServiceUnavailable)
			}
			return rec.Result(), nil
		})
		h, err := NewHandler(Options{Name: ProductPage, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		rec := get(t, h, "/productpage", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d", rec.Code)
		}
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Fatal("page renders unescaped markup from a dependency")
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
