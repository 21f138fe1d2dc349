package certserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/trellis-mesh/trellis/internal/ca"
	"github.com/trellis-mesh/trellis/internal/jointoken"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a CA, join tokens and a running secure listener.
type fixture struct {
	ca     *ca.CA
	tokens *jointoken.Issuer
	addr   string
	authed *Funnel
	logs   *syncBuffer
}

// startFixture serves Split on a loopback port with the CSR service behind
// the anonymous funnel; the authenticated funnel is left to the test.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	c, err := ca.Load(ca.Options{DataDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := jointoken.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sas := map[string]string{"default/reviews-v1": "bookinfo-reviews", "default/plain": ""}
	srv, err := New(Options{CA: c, Logger: log, Authenticator: JoinTokens{
		Tokens:   tokens,
		Identity: c.Identity,
		ServiceAccount: func(ns, name string) (string, bool) {
			sa, ok := sas[ns+"/"+name]
			return sa, ok
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServingConfig(c, []net.IP{net.IPv4(127, 0, 0, 1)}, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	anon, authed := NewFunnel(lis.Addr()), NewFunnel(lis.Addr())
	g := grpc.NewServer()
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(anon) }()
	go func() {
		defer wg.Done()
		if err := Split(ctx, lis, cfg, anon, authed, log); err != nil {
			t.Errorf("Split: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		g.Stop()
		authed.Close()
		wg.Wait()
	})
	return &fixture{ca: c, tokens: tokens, addr: lis.Addr().String(), authed: authed, logs: logs}
}

func (f *fixture) dial(t *testing.T, clientCert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.ca.Pool(), ServerName: ServerName}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func csrPEM(t *testing.T, uris ...string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func TestCreateCertificate(t *testing.T) {
	f := startFixture(t)
	client := securityv1alpha1.NewIstioCertificateServiceClient(f.dial(t, nil))
	good := f.tokens.Token("default", "reviews-v1")
	tests := []struct {
		name     string
		md       []string // key, value pairs
		csrURIs  []string
		wantCode codes.Code
		wantID   string
		wantLog  string
	}{
		{name: "good token gets its service account",
			md:       []string{WorkloadKey, "default/reviews-v1", AuthorizationKey, "Bearer " + good},
			wantCode: codes.OK, wantID: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
		{name: "csr may name the same identity",
			md:       []string{WorkloadKey, "default/reviews-v1", AuthorizationKey, "Bearer " + good},
			csrURIs:  []string{"spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
			wantCode: codes.OK, wantID: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
		{name: "workload without serviceAccount is default",
			md:       []string{WorkloadKey, "default/plain", AuthorizationKey, "Bearer " + f.tokens.Token("default", "plain")},
			wantCode: codes.OK, wantID: "spiffe://cluster.local/ns/default/sa/default"},
		{name: "csr for another identity is refused and logged",
			md:       []string{WorkloadKey, "default/reviews-v1", AuthorizationKey, "Bearer " + good},
			csrURIs:  []string{"spiffe://cluster.local/ns/default/sa/bookinfo-ratings"},
			wantCode: codes.PermissionDenied, wantLog: "asked_for=spiffe://cluster.local/ns/default/sa/bookinfo-ratings"},
		{name: "another workload's token is refused",
			md:       []string{WorkloadKey, "default/plain", AuthorizationKey, "Bearer " + good},
			wantCode: codes.Unauthenticated, wantLog: "bad token for default/plain"},
		{name: "bad token is refused",
			md:       []string{WorkloadKey, "default/reviews-v1", AuthorizationKey, "Bearer 00" + good[2:]},
			wantCode: codes.Unauthenticated, wantLog: "bad token for default/reviews-v1"},
		{name: "no token is refused",
			md:       []string{WorkloadKey, "default/reviews-v1"},
			wantCode: codes.Unauthenticated, wantLog: "authentication failed"},
		{name: "token of a workload no longer configured is refused",
			md:       []string{WorkloadKey, "default/gone", AuthorizationKey, "Bearer " + f.tokens.Token("default", "gone")},
			wantCode: codes.Unauthenticated, wantLog: "no WorkloadEntry default/gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			csr, _ := csrPEM(t, tc.csrURIs...)
			resp, err := client.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: csr})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantLog != "" && !strings.Contains(f.logs.String(), tc.wantLog) {
				t.Errorf("log does not mention %q:\n%s", tc.wantLog, f.logs.String())
			}
			if tc.wantCode != codes.OK {
				return
			}
			if len(resp.CertChain) != 2 {
				t.Fatalf("cert_chain has %d entries, want leaf and root", len(resp.CertChain))
			}
			leaf, err := ca.ParseCertificates([]byte(resp.CertChain[0]))
			if err != nil {
				t.Fatal(err)
			}
			id, err := ca.IdentityOf(leaf[0])
			if err != nil || id.String() != tc.wantID {
				t.Errorf("identity = %v, %v; want %s", id, err, tc.wantID)
			}
		})
	}
}

// A connection with a verified SVID goes to the authenticated (xDS) side; a
// certificate from another CA fails the handshake.
func TestSplitRoutesByClientCertificate(t *testing.T) {
	f := startFixture(t)
	id, _ := f.ca.Identity("default", "reviews")
	svid := issue(t, f.ca, id.String())

	other, err := ca.Load(ca.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, other, id.String())

	t.Run("svid reaches the authenticated funnel", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: f.ca.Pool(), ServerName: ServerName, Certificates: []tls.Certificate{*svid}}
		done := make(chan error, 1)
		go func() {
			c, err := tls.Dial("tcp", f.addr, cfg)
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		conn, err := f.authed.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		peer := conn.(*tls.Conn).ConnectionState().PeerCertificates
		got, err := ca.IdentityOf(peer[0])
		if err != nil || got.String() != id.String() {
			t.Errorf("peer identity = %v, %v", got, err)
		}
		if err := <-done; err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	t.Run("certificate from another CA is refused", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: f.ca.Pool(), ServerName: ServerName, Certificates: []tls.Certificate{*foreign}}
		c, err := tls.Dial("tcp", f.addr, cfg)
		if err == nil {
			// TLS 1.3: the client learns of the refusal on its first read.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("handshake with a foreign certificate: err = %v, want a certificate error", err)
		}
	})
	t.Run("server certificate names istiod", func(t *testing.T) {
		c, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "trellisd"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		if err := leaf.VerifyHostname(ServerName); err != nil {
			t.Error(err)
		}
		if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
			t.Error(err)
		}
	})
}

func issue(t *testing.T, c *ca.CA, id string) *tls.Certificate {
	t.Helper()
	csr, key := csrPEM(t)
	b, _ := pem.Decode([]byte(csr))
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ca.ParseIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := c.Identity(parsed.Namespace, parsed.ServiceAccount)
	chain, err := c.Sign(req, sid, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key, Leaf: chain[0]}
}
