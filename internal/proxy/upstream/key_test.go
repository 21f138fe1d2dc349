package upstream

import (
	"fmt"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// fmtKey is the fmt form Key had; Key must produce the same string.
func fmtKey(t *runtime.UpstreamTLS) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sni=%q alpn=%q cert=%q root=%q v=%d-%d", t.SNI, t.ALPN, t.CertSecret, t.RootSecret, t.MinVersion, t.MaxVersion)
	for _, s := range t.SubjectAltNames {
		fmt.Fprintf(&b, " san=%d/%d/%q/%v", s.Type, s.Match.Kind, s.Match.Value, s.Match.IgnoreCase)
	}
	return b.String()
}

func TestKeyMatchesFmtForm(t *testing.T) {
	tests := []struct {
		name string
		in   *runtime.UpstreamTLS
	}{
		{"empty", &runtime.UpstreamTLS{}},
		{"istio mtls", &runtime.UpstreamTLS{
			SNI: "outbound_.9080_._.reviews.default.svc.cluster.local", ALPN: []string{"istio-peer-exchange", "istio", "http/1.1"},
			CertSecret: "default", RootSecret: "ROOTCA", MinVersion: 0x0303, MaxVersion: 0x0304,
			SubjectAltNames: []runtime.SANMatch{
				{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "spiffe://cluster.local/ns/default/sa/reviews"}},
				{Type: runtime.SANDNS, Match: runtime.StringMatch{Kind: runtime.MatchSuffix, Value: ".example.com", IgnoreCase: true}},
			},
		}},
		{"quotes and unicode", &runtime.UpstreamTLS{SNI: "a\"b\\c", ALPN: []string{"h2"}, CertSecret: "file-cert:/é~/k", RootSecret: "\x00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := Key(tc.in), fmtKey(tc.in); got != want {
				t.Errorf("Key = %s, want %s", got, want)
			}
		})
	}
}

func FuzzKey(f *testing.F) {
	f.Add("sni", "h2", "cert", "root", uint16(0x303), "spiffe://x", true)
	f.Fuzz(func(t *testing.T, sni, alpn, cert, root string, v uint16, san string, ic bool) {
		in := &runtime.UpstreamTLS{SNI: sni, ALPN: strings.Split(alpn, ","), CertSecret: cert, RootSecret: root, MinVersion: v, MaxVersion: v,
			SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Value: san, IgnoreCase: ic}}}}
		if got, want := Key(in), fmtKey(in); got != want {
			t.Fatalf("Key = %s, want %s", got, want)
		}
	})
}

func BenchmarkKey(b *testing.B) {
	in := &runtime.UpstreamTLS{
		SNI: "outbound_.9080_._.reviews.default.svc.cluster.local", ALPN: []string{"istio-peer-exchange", "istio", "http/1.1"},
		CertSecret: "default", RootSecret: "ROOTCA", MinVersion: 0x0303,
		SubjectAltNames: []runtime.SANMatch{{Type: runtime.SANURI, Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "spiffe://cluster.local/ns/default/sa/reviews"}}},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Key(in)
	}
}
