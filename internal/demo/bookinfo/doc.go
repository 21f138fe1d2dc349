// Package bookinfo is Istio's Bookinfo sample, rewritten small in Go with only
// net/http: four services that call each other by name through their
// sidecar's HTTP-proxy listener.
//
//	browser ──▶ gateway ──▶ productpage ──1 GET http://details:9080/details/0──▶ details
//	                             │  (via the sidecar's HTTP proxy, 2 headers propagated)
//	                             └──1 GET http://reviews:9080/reviews/0──▶ reviews v1 (no stars)
//	                                                                      reviews v2 (black) ──▶ ratings
//	                                                                      reviews v3 (red)   ──▶ ratings
//	  3 productpage prints "Reviews served by: reviews-vN"; 4 failures degrade the page
//
// Step 1: an app's outbound calls go to http://NAME:9080/... through an HTTP
// proxy (Options.Proxy, else HTTP_PROXY): the sidecar's ADDRESS:15080
// listener, which routes by the Host header as a mesh would.
//
// Step 2: each call carries the tracing headers of the request being served
// (x-request-id, b3, traceparent) and the user: productpage turns its "user"
// cookie (set by /login) into Istio Bookinfo's "end-user" header, which is what
// the sample VirtualServices match on.
//
// Step 3: reviews answers with its "podname" (reviews-v3); productpage prints
// it on the page so a person or a test can see routing change.
//
// Step 4: a failed dependency degrades the page, never breaks it: productpage
// says "Error fetching product reviews", reviews says the ratings service is
// unavailable.
//
// The demo orchestrator (package demo) runs each app as
// `trellis demo app --name reviews --version v3 --listen ADDR --proxy URL`.
package bookinfo
