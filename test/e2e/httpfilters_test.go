package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// statusOf sends GET url through c and returns the status and body.
func statusOf(ctx context.Context, c *http.Client, url string, hdr http.Header) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), nil
}

// TestHTTPFilters applies an AuthorizationPolicy (DENY /admin) under Istio's
// default BASE normalization and a RequestAuthentication with an inline
// JWKS, then checks through real proxies that the paths BASE normalizes
// cannot bypass the DENY and that a forged token is refused. As in Istio,
// BASE neither merges slashes nor decodes %2F: TestSecurityNoBypass covers
// //admin and /admin%2F under DECODE_AND_MERGE_SLASHES. It needs the
// translator's security output (issue 4) as well as the proxy filters.
func TestHTTPFilters(t *testing.T) {
	m := startMesh(t, meshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writeFile(t, m.dir, "zz-authz.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: default
spec:
  selector:
    matchLabels:
      app: echo
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: default
spec:
  selector:
    matchLabels:
      app: echo
  jwtRules:
  - issuer: https://issuer.trellis.test
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
`)
	c := m.egressClient(t)
	url := func(p string) string { return echoURL(portHTTP, p) }
	// Both server sidecars (round robin) must have the policy: the push
	// reaches them at slightly different moments.
	waitFor(t, "DENY /admin in force on every server sidecar", readyTimeout, func() error {
		for range 10 {
			code, _, err := statusOf(ctx, c, url("/admin"), nil)
			if err != nil {
				return err
			}
			if code != http.StatusForbidden {
				return fmt.Errorf("GET /admin = %d, want 403", code)
			}
		}
		return nil
	}, m.all()...)

	for _, p := range []string{"/admin", "/admin/../admin", "/admin/./x", "/%61dmin", "/admin/", "/admin/x"} {
		code, body, err := statusOf(ctx, c, url(p), nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusForbidden || body != "RBAC: access denied" {
			t.Errorf("GET %s = %d %q, want 403 RBAC: access denied", p, code, body)
		}
	}
	if code, _, err := statusOf(ctx, c, url("/hello"), nil); err != nil || code != http.StatusOK {
		t.Errorf("GET /hello = %d, %v; want 200", code, err)
	}
	// A token signed by nobody the JWKS knows: 401, not the app.
	forged := "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50cmVsbGlzLnRlc3QiLCJzdWIiOiJldmUifQ.AAAA"
	code, body, err := statusOf(ctx, c, url("/hello"), http.Header{"Authorization": {"Bearer " + forged}})
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusUnauthorized {
		t.Errorf("forged token: %d %q, want 401", code, body)
	}
}
