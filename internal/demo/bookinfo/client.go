package bookinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// EndUserHeader is the header Istio's Bookinfo carries the logged-in user in;
// the sample VirtualServices route on it ("end-user: jason").
const EndUserHeader = "end-user"

// UserCookie is the cookie /login sets and productpage turns into
// EndUserHeader.
const UserCookie = "user"

// propagated are the request headers each app copies onto its outbound calls,
// so a mesh can trace a request and route on the user (Istio's Bookinfo
// propagates the same set).
var propagated = []string{
	"x-request-id",
	"traceparent", "tracestate",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
	EndUserHeader,
}

// maxBody bounds what an app reads from a dependency.
const maxBody = 1 << 20

// serviceURL is the address an app calls a service on, by name: the mesh (the
// sidecar's HTTP-proxy listener) resolves it.
func serviceURL(name, path string) string {
	return "http://" + name + ":" + strconv.Itoa(Port) + path
}

// getJSON calls GET url with the propagated headers of in (and the user,
// when known), and decodes a 200 answer into out. Any other status is an
// error carrying it.
func (a *app) getJSON(in *http.Request, url, user string, out any) error {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("call %s: %w", url, err)
	}
	for _, h := range propagated {
		if v := in.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if user != "" {
		req.Header.Set(EndUserHeader, user)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("call %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("call %s: status %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("call %s: decode: %w", url, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// bookID reads the {id} path value; Bookinfo's ids are integers.
func bookID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
		return 0, false
	}
	return id, true
}
