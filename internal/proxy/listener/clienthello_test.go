package listener

import (
	"bytes"
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recordHello returns the bytes a crypto/tls client sends first.
func recordHello(t testing.TB, sni string, alpn []string) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(c, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
	}()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for {
		n, err := s.Read(b)
		buf.Write(b[:n])
		if _, _, perr := parseClientHello(buf.Bytes()); perr != errShort || err != nil {
			break
		}
	}
	_ = s.Close()
	_ = c.Close()
	<-done
	return buf.Bytes()
}

func TestParseClientHello(t *testing.T) {
	tests := []struct {
		name string
		sni  string
		alpn []string
	}{
		{"sni and alpn", "Reviews.Example.COM", []string{"h2", "http/1.1"}},
		{"istio alpn", "outbound_.9080_._.reviews.default.svc.cluster.local", []string{"istio-peer-exchange", "istio"}},
		{"no sni", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := recordHello(t, tc.sni, tc.alpn)
			h, _, err := parseClientHello(b)
			if err != nil {
				t.Fatalf("parseClientHello: %v", err)
			}
			want := clientHello{serverName: lower(tc.sni), alpn: tc.alpn}
			if diff := cmp.Diff(want, h, cmp.AllowUnexported(clientHello{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Every strict prefix asks for more bytes, never misparses.
			for i := 0; i < len(b); i += 7 {
				if _, need, err := parseClientHello(b[:i]); err != errShort || need <= i {
					t.Fatalf("prefix %d: err %v need %d", i, err, need)
				}
			}
		})
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }

func TestParseClientHelloRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"http":          []byte("GET / HTTP/1.1\r\n"),
		"h2 preface":    h2Preface,
		"bad version":   {0x16, 9, 1, 0, 10},
		"huge record":   {0x16, 3, 1, 0xff, 0xff},
		"server hello":  {0x16, 3, 3, 0, 4, 2, 0, 0, 0},
		"short handshk": {0x16, 3, 3, 0, 4, 1, 0, 0, 9},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := parseClientHello(b); err != errNotHello {
				t.Errorf("err = %v, want errNotHello", err)
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(recordHello(f, "a.example.com", []string{"h2"}))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, need, err := parseClientHello(b)
		switch err {
		case nil:
			if slices.Contains(h.alpn, "") {
				t.Fatal("empty ALPN protocol accepted")
			}
		case errShort:
			if need <= len(b) {
				t.Fatalf("errShort with need %d <= len %d", need, len(b))
			}
		case errNotHello:
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func TestDetectHTTP(t *testing.T) {
	for in, want := range map[string]string{
		"GET / HTTP/1.1\r\nHost: x\r\n": "http/1.1",
		"POST /a?b HTTP/1.0\r\n":        "http/1.0",
		string(h2Preface):               "h2c",
		"PRI * HTTP/2":                  "",
		"GET / HT":                      "",
		"\x16\x03\x01":                  "-",
		"SSH-2.0-OpenSSH\r\n":           "-",
		" GET / HTTP/1.1\r\n":           "-",
	} {
		if got := detectHTTP([]byte(in)); got != want {
			t.Errorf("detectHTTP(%q) = %q, want %q", in, got, want)
		}
	}
}
