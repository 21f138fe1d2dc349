package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 4 point 9: x-forwarded-client-cert is set by the sidecars, never
// trusted from outside. Istio's sidecar inbound over mTLS is APPEND_FORWARD
// with the peer's URI (Envoy's element: By=<our URI>;Hash=<peer cert
// sha256>;URI=<peer URI>); plain-text inbound and gateways SANITIZE_SET; the
// client sidecar's outbound strips what the app sent (Envoy's SANITIZE).

// forgedXFCC is what a malicious client app sends, claiming admin.
const forgedXFCC = "By=" + idDefault + ";Hash=00;URI=spiffe://cluster.local/ns/default/sa/admin"

// xfccSeen returns the x-forwarded-client-cert values the echo app saw in
// its reply body.
func xfccSeen(t *testing.T, body string) []string {
	t.Helper()
	var r echoReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not an echo reply: %v: %s", err, tail(body, 200))
	}
	return r.Headers["X-Forwarded-Client-Cert"]
}

// tlsGetWith is tlsGet with request headers.
func tlsGetWith(m *secureMesh, cert tls.Certificate, path string, headers map[string]string) (int, string, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(m.bl.ip(hostEchoV1), fmt.Sprint(portHTTP)), &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // the server's identity is not under test here
		NextProtos:         []string{"istio-peer-exchange", "istio", "http/1.1"},
	})
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	return roundTrip(c, path, headers)
}

// TestSecurityXFCCStrict: under STRICT mTLS the app sees the element its
// sidecar set for the calling sidecar, and a header forged by the client
// app never reaches it as is.
func TestSecurityXFCCStrict(t *testing.T) {
	m := startSecurityMesh(t, securityMeshOptions{files: map[string]string{
		"peer-authentication.yaml": strictPeerAuthenticationYAML,
	}})
	waitEcho(t, m, "/ready", http.StatusOK)
	forged := map[string]string{"X-Forwarded-Client-Cert": forgedXFCC}

	t.Run("through the sidecars the app sees only the client sidecar's element", func(t *testing.T) {
		code, body, err := rawGet(m.clientIP, portHTTP, "/", forged)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET = %d, %v: %s", code, err, tail(body, 200))
		}
		want := regexp.MustCompile(`^By=` + regexp.QuoteMeta(idDefault) + `;Hash=[0-9a-f]{64};URI=` + regexp.QuoteMeta(idDefault) + `$`)
		got := xfccSeen(t, body)
		if len(got) != 1 || !want.MatchString(got[0]) {
			t.Errorf("app saw x-forwarded-client-cert %q, want one element matching %s", got, want)
		}
	})
	t.Run("a peer's forged header is kept only before the element for the peer", func(t *testing.T) {
		// A peer with a mesh certificate talks to the inbound directly:
		// APPEND_FORWARD keeps what it sent and appends what its
		// certificate proves, so the last element is the truth.
		cert := meshCert(t, m.dataDir, idIntruder, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		code, body, err := tlsGetWith(m, cert, "/", forged)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET = %d, %v: %s", code, err, tail(body, 200))
		}
		sum := sha256.Sum256(cert.Certificate[0])
		want := forgedXFCC + ",By=" + idDefault + ";Hash=" + hex.EncodeToString(sum[:]) + ";URI=" + idIntruder
		if got := strings.Join(xfccSeen(t, body), ","); got != want {
			t.Errorf("app saw x-forwarded-client-cert\n  %q\nwant\n  %q", got, want)
		}
	})
}

// TestSecurityXFCCPlainText: a plain-text request to a PERMISSIVE inbound
// has no peer to vouch for; a forged header is removed (SANITIZE_SET).
func TestSecurityXFCCPlainText(t *testing.T) {
	m := startSecurityMesh(t, securityMeshOptions{})
	waitEcho(t, m, "/ready", http.StatusOK)
	code, body, err := rawGet(m.bl.ip(hostEchoV1), portHTTP, "/", map[string]string{"X-Forwarded-Client-Cert": forgedXFCC})
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET = %d, %v: %s", code, err, tail(body, 200))
	}
	if got := xfccSeen(t, body); len(got) != 0 {
		t.Errorf("app saw x-forwarded-client-cert %q over plain text, want none", got)
	}
}
