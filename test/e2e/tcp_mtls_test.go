package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// tcpDenyThenAllow puts two AuthorizationPolicies on the echo workloads'
// TCP port: Istio emits them as two envoy.filters.network.rbac filters on
// one chain (DENY before ALLOW), and a connection must pass both.
const tcpDenyThenAllow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-deny-intruder, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/intruder"]}}]
    to: [{operation: {ports: ["8083"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-allow-mesh, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - to: [{operation: {ports: ["8080", "8081", "8082"]}}]
  - from: [{source: {principals: ["cluster.local/ns/default/sa/default", "cluster.local/ns/default/sa/intruder"]}}]
    to: [{operation: {ports: ["8083"]}}]
`

// TestTCPStrictMTLS: in a STRICT mesh whose endpoints carry tlsMode: istio,
// plain TCP through the client sidecar reaches the echo app (the sidecar
// hop is mTLS: the server side takes nothing else), and the server's TCP
// chain runs a DENY and an ALLOW network rbac filter in turn.
func TestTCPStrictMTLS(t *testing.T) {
	m := startSecurityMesh(t, securityMeshOptions{files: map[string]string{
		"peer-authentication.yaml": strictPeerAuthenticationYAML,
		"authz.yaml":               tcpDenyThenAllow,
	}})
	waitEcho(t, m, "/ready", http.StatusOK)
	echoIP := m.bl.ip(hostEchoV1)

	t.Run("echo through the sidecars", func(t *testing.T) {
		before := m.apps["echo-v1"].tcpConns.Load() + m.apps["echo-v2"].tcpConns.Load()
		const conns = 3
		for i := range conns {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(m.clientIP, fmt.Sprint(portTCP)), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := echoLines(c, i); err != nil {
				t.Fatal(err)
			}
		}
		if got := m.apps["echo-v1"].tcpConns.Load() + m.apps["echo-v2"].tcpConns.Load() - before; got != conns {
			t.Errorf("TCP apps accepted %d connections, want %d", got, conns)
		}
	})
	t.Run("plain text to the inbound refused", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(echoIP, fmt.Sprint(portTCP)), 2*time.Second)
		if err != nil {
			return // refused outright is fine too
		}
		if err := echoLines(c, 0); err == nil {
			t.Error("plain text to a STRICT TCP inbound was echoed")
		}
	})
	mtls := func(id string) (net.Conn, error) {
		cert := meshCert(t, m.dataDir, id, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		d := &net.Dialer{Timeout: 2 * time.Second}
		return tls.DialWithDialer(d, "tcp", net.JoinHostPort(echoIP, fmt.Sprint(portTCP)), &tls.Config{
			Certificates:       []tls.Certificate{cert},
			InsecureSkipVerify: true, // the server's identity is not under test here
			NextProtos:         []string{"istio-peer-exchange", "istio"},
		})
	}
	for _, tc := range []struct {
		name, id string
		allowed  bool
	}{
		{"mesh identity passes DENY and ALLOW", idDefault, true},
		{"DENY closes the intruder though ALLOW lists it", idIntruder, false},
		{"ALLOW closes an identity it does not list", "spiffe://cluster.local/ns/default/sa/robot", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mtls(tc.id)
			if err != nil {
				t.Fatalf("mTLS handshake: %v", err)
			}
			err = echoLines(c, 0)
			if tc.allowed && err != nil {
				t.Errorf("echo: %v", err)
			}
			if !tc.allowed && err == nil {
				t.Error("denied connection was echoed")
			}
		})
	}
}

// echoLines writes a few lines on c and checks each comes back, then
// closes c.
func echoLines(c net.Conn, conn int) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for j := range 3 {
		line := fmt.Sprintf("conn %d line %d\n", conn, j)
		if _, err := io.WriteString(c, line); err != nil {
			return fmt.Errorf("conn %d: write: %w", conn, err)
		}
		got, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("conn %d: read: %w", conn, err)
		}
		if got != line {
			return fmt.Errorf("conn %d: echoed %q, want %q", conn, got, line)
		}
	}
	return nil
}
