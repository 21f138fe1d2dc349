package e2e

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issue 4, points 5–10, through real proxies: automatic mTLS,
// PeerAuthentication, AuthorizationPolicy, RequestAuthentication and path
// normalization. Every workload here carries security.istio.io/tlsMode:
// istio, so clients originate mTLS (Istio's auto mTLS).

// Identities of the mesh's workloads (no serviceAccount: "default").
const (
	idDefault  = "spiffe://cluster.local/ns/default/sa/default"
	idIntruder = "spiffe://cluster.local/ns/default/sa/intruder"
)

// securityMeshOptions shape a mesh for the security tests.
type securityMeshOptions struct {
	files      map[string]string // extra config files (policies)
	meshConfig string            // trellisd --mesh-config content; "" for none
}

// startSecurityMesh is startSecureMesh with tlsMode labels on every
// WorkloadEntry, extra policy files and an optional MeshConfig.
func startSecurityMesh(t *testing.T, opts securityMeshOptions) *secureMesh {
	t.Helper()
	bl := newBlock(t)
	m := &secureMesh{
		mesh: &mesh{
			t: t, bl: bl, dir: t.TempDir(),
			monAddr:  bl.ip(hostTrellisd) + ":15014",
			proxies:  map[string]*proc{},
			apps:     map[string]*apps{},
			clientIP: bl.ip(hostClient),
		},
		dataDir:    t.TempDir(),
		secureAddr: bl.ip(hostTrellisd) + ":15012",
	}
	m.xdsAddr = m.secureAddr
	m.apps["echo-v1"] = startApps(t, "echo-v1", bl.ip(hostAppsV1))
	m.apps["echo-v2"] = startApps(t, "echo-v2", bl.ip(hostAppsV2))
	// WorkloadEntry labels sit at two spaces; the ServiceEntry's selector deeper.
	writeFile(t, m.dir, "mesh.yaml", strings.ReplaceAll(m.meshYAML(), "\n  labels:\n", "\n  labels:\n    security.istio.io/tlsMode: istio\n"))
	writeFile(t, m.dir, "sidecars.yaml", m.sidecarsYAML())
	writeFile(t, m.dir, "dr-echo.yaml", destinationRuleYAML)
	for name, content := range opts.files {
		writeFile(t, m.dir, name, content)
	}
	args := []string{"--config-dir", m.dir, "--xds-addr", "", "--secure-addr", m.secureAddr,
		"--monitoring-addr", m.monAddr, "--data-dir", m.dataDir}
	if opts.meshConfig != "" {
		mc := filepath.Join(t.TempDir(), "meshconfig.yaml")
		if err := os.WriteFile(mc, []byte(opts.meshConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--mesh-config", mc)
	}
	m.trellisd = startProc(t, "trellisd", "trellisd", args...)
	waitFor(t, "trellisd /ready", readyTimeout, ready("http://"+m.monAddr+"/ready"), m.trellisd)
	m.startSecureProxy("echo-v1", bl.ip(hostEchoV1))
	m.startSecureProxy("echo-v2", bl.ip(hostEchoV2))
	m.startSecureProxy("client", m.clientIP)
	return m
}

// waitEcho waits until a GET of path through the client sidecar answers
// status want.
func waitEcho(t *testing.T, m *secureMesh, path string, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("GET %s through the client sidecar answers %d", path, want), readyTimeout, func() error {
		code, body, err := rawGet(m.clientIP, portHTTP, path, nil)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("status %d: %s", code, tail(body, 200))
		}
		return nil
	}, m.all()...)
}

// rawGet sends one HTTP/1.1 GET with the path exactly as given (no client
// cleaning) to ip:port in plain text, returning status and body.
func rawGet(ip string, port int, path string, headers map[string]string) (int, string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), 2*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	return roundTrip(c, path, headers)
}

func roundTrip(c net.Conn, path string, headers map[string]string) (int, string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n", path, echoHost, portHTTP)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), err
}

// tlsGet speaks mTLS directly to echo-v1's inbound listener with cert,
// as a peer sidecar would.
func tlsGet(m *secureMesh, cert tls.Certificate, path string) (int, string, error) {
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
	return roundTrip(c, path, nil)
}

// meshCert issues a certificate for spiffeID from the mesh's own root (the
// CA key trellisd keeps in its data directory), valid from nb to na.
func meshCert(t *testing.T, dataDir, spiffeID string, nb, na time.Time) tls.Certificate {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(dataDir, "ca", "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dataDir, "ca", "root-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return issue(t, caCert, ca.PrivateKey.(crypto.Signer), spiffeID, nb, na)
}

// foreignCert is a certificate for spiffeID from a CA the mesh does not trust.
func foreignCert(t *testing.T, spiffeID string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	return issue(t, root, key, spiffeID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func issue(t *testing.T, parent *x509.Certificate, signer crypto.Signer, spiffeID string, nb, na time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(spiffeID)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{u}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, parent.Raw}, PrivateKey: key}
}

const allowDefaultSA = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-callers, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/default"]}
`

// TestSecurityStrictMTLS: STRICT refuses plain text and untrusted or
// expired client certificates; the sidecars' own mTLS works; a certificate
// claiming another workload's identity is denied by policy.
func TestSecurityStrictMTLS(t *testing.T) {
	m := startSecurityMesh(t, securityMeshOptions{files: map[string]string{
		"peer-authentication.yaml": strictPeerAuthenticationYAML,
		"authz.yaml":               allowDefaultSA,
	}})
	waitEcho(t, m, "/ready", http.StatusOK)
	echoIP := m.bl.ip(hostEchoV1)

	t.Run("plain text refused", func(t *testing.T) {
		if code, _, err := rawGet(echoIP, portHTTP, "/", nil); err == nil {
			t.Errorf("plain text to a STRICT inbound answered %d", code)
		}
	})
	t.Run("certificate from another CA refused", func(t *testing.T) {
		if code, _, err := tlsGet(m, foreignCert(t, idDefault), "/"); err == nil {
			t.Errorf("foreign certificate answered %d", code)
		}
	})
	t.Run("expired certificate refused", func(t *testing.T) {
		cert := meshCert(t, m.dataDir, idDefault, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
		if code, _, err := tlsGet(m, cert, "/"); err == nil {
			t.Errorf("expired certificate answered %d", code)
		}
	})
	t.Run("valid mesh certificate accepted", func(t *testing.T) {
		cert := meshCert(t, m.dataDir, idDefault, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		code, body, err := tlsGet(m, cert, "/")
		if err != nil || code != http.StatusOK {
			t.Errorf("GET with a valid certificate = %d, %v: %s", code, err, tail(body, 200))
		}
	})
	t.Run("another workload's identity denied by policy", func(t *testing.T) {
		cert := meshCert(t, m.dataDir, idIntruder, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		code, body, err := tlsGet(m, cert, "/")
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "RBAC: access denied") {
			t.Errorf("GET as intruder = %d, %v, %q; want 403 RBAC: access denied", code, err, tail(body, 200))
		}
	})
}

// TestSecurityPermissive: without a PeerAuthentication (Istio's PERMISSIVE
// default) one port takes both plain text and mTLS.
func TestSecurityPermissive(t *testing.T) {
	m := startSecurityMesh(t, securityMeshOptions{})
	waitEcho(t, m, "/ready", http.StatusOK)
	if code, body, err := rawGet(m.bl.ip(hostEchoV1), portHTTP, "/", nil); err != nil || code != http.StatusOK {
		t.Errorf("plain text to a PERMISSIVE inbound = %d, %v: %s", code, err, tail(body, 200))
	}
	cert := meshCert(t, m.dataDir, idDefault, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if code, body, err := tlsGet(m, cert, "/"); err != nil || code != http.StatusOK {
		t.Errorf("mTLS to a PERMISSIVE inbound = %d, %v: %s", code, err, tail(body, 200))
	}
}

// TestSecurityNoBypass: with DECODE_AND_MERGE_SLASHES, a DENY on /admin
// holds against every spelling, and denied HTTP answers 403 "RBAC: access
// denied".
func TestSecurityNoBypass(t *testing.T) {
	deny := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to:
    - operation: {ports: ["8080"], paths: ["/admin", "/admin/*"]}
`
	m := startSecurityMesh(t, securityMeshOptions{
		files:      map[string]string{"authz.yaml": deny},
		meshConfig: "pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}\n",
	})
	waitEcho(t, m, "/admin", http.StatusForbidden)
	for _, path := range []string{"/admin", "/admin/../admin", "//admin", "/%61dmin", "/admin%2F", "/admin/x", "/./admin", "/public/../admin"} {
		t.Run(path, func(t *testing.T) {
			code, body, err := rawGet(m.clientIP, portHTTP, path, nil)
			if err != nil || code != http.StatusForbidden || !strings.Contains(body, "RBAC: access denied") {
				t.Errorf("GET %s = %d, %v, %q; want 403 RBAC: access denied", path, code, err, tail(body, 200))
			}
		})
	}
	if code, _, err := rawGet(m.clientIP, portHTTP, "/public", nil); err != nil || code != http.StatusOK {
		t.Errorf("GET /public = %d, %v; want 200", code, err)
	}
}

// TestSecurityDeniedTCP: a TCP connection no ALLOW rule admits is closed
// by the server's sidecar, while HTTP on the other ports still flows.
func TestSecurityDeniedTCP(t *testing.T) {
	allow := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-only-robots, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - to: [{operation: {ports: ["8080", "8081", "8082"]}}]
  - from: [{source: {principals: ["cluster.local/ns/default/sa/robot"]}}]
    to: [{operation: {ports: ["8083"]}}]
`
	m := startSecurityMesh(t, securityMeshOptions{files: map[string]string{"authz.yaml": allow}})
	waitEcho(t, m, "/ready", http.StatusOK)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(m.clientIP, fmt.Sprint(portTCP)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "ping\n")
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("denied TCP connection answered %d bytes", n)
	}
}

// TestSecurityJWT: an invalid token answers 401 whatever is wrong with it
// (a wrong audience 403, as Envoy answers); a valid one and none at all pass
// authentication.
func TestSecurityJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	const iss = "https://issuer.trellis.test"
	ra := fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  jwtRules:
  - issuer: %s
    audiences: [echo]
    jwks: '%s'
`, iss, jwks)
	m := startSecurityMesh(t, securityMeshOptions{files: map[string]string{"jwt.yaml": ra}})
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss, "sub": "alice", "aud": "echo", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(k any, alg jose.SignatureAlgorithm, kid string, c map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(c)
		obj, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	valid := sign(key, jose.ES256, "k1", claims(nil))
	b64 := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims(nil))
	mac := hmac.New(sha256.New, []byte("not-the-key"))
	hsInput := b64([]byte(`{"alg":"HS256","kid":"k1","typ":"JWT"}`)) + "." + b64(payload)
	mac.Write([]byte(hsInput))
	parts := strings.Split(valid, ".")
	forged := map[string]string{
		"alg none":          b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(payload) + ".",
		"wrong alg":         hsInput + "." + b64(mac.Sum(nil)),
		"expired":           sign(key, jose.ES256, "k1", claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"nbf in the future": sign(key, jose.ES256, "k1", claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
		"wrong issuer":      sign(key, jose.ES256, "k1", claims(func(c map[string]any) { c["iss"] = "https://evil.test" })),
		"wrong audience":    sign(key, jose.ES256, "k1", claims(func(c map[string]any) { c["aud"] = "other" })),
		"bad signature":     parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"unknown kid":       sign(other, jose.ES256, "k2", claims(nil)),
		"other key":         sign(other, jose.ES256, "k1", claims(nil)),
	}
	waitFor(t, "a valid token passes", readyTimeout, func() error {
		code, body, err := rawGet(m.clientIP, portHTTP, "/", map[string]string{"Authorization": "Bearer " + valid})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("status %d, %v: %s", code, err, tail(body, 200))
		}
		return nil
	}, m.all()...)
	if code, _, err := rawGet(m.clientIP, portHTTP, "/", nil); err != nil || code != http.StatusOK {
		t.Errorf("no token = %d, %v; want 200 (left to authorization)", code, err)
	}
	for name, tok := range forged {
		t.Run(name, func(t *testing.T) {
			code, body, err := rawGet(m.clientIP, portHTTP, "/", map[string]string{"Authorization": "Bearer " + tok})
			want := http.StatusUnauthorized
			if name == "wrong audience" {
				// Envoy's jwt_authn answers JwtAudienceNotAllowed with 403
				// and its status string; every other failure is 401.
				want = http.StatusForbidden
				if body != "Audiences in Jwt are not allowed" {
					t.Errorf("wrong audience body = %q, want Envoy's %q", tail(body, 200), "Audiences in Jwt are not allowed")
				}
			}
			if err != nil || code != want {
				t.Errorf("forged token (%s) = %d, %v, %q; want %d", name, code, err, tail(body, 200), want)
			}
		})
	}
}
