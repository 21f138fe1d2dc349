package httpproxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestXFCCOverMTLS checks the element appended or set over mTLS against
// Envoy's format: By= (our certificate), Hash=, then URI= of the peer.
func TestXFCCOverMTLS(t *testing.T) {
	peerURI, _ := url.Parse("spiffe://cluster.local/ns/default/sa/client")
	peer := &x509.Certificate{Raw: []byte("peer certificate DER"), URIs: []*url.URL{peerURI}, DNSNames: []string{"client.local"}}
	sum := sha256.Sum256(peer.Raw)
	hash := hex.EncodeToString(sum[:])
	const by = "spiffe://cluster.local/ns/default/sa/echo"
	const forged = `By=spiffe://cluster.local/ns/default/sa/echo;URI=spiffe://cluster.local/ns/default/sa/admin`
	for _, tc := range []struct {
		name  string
		x     runtime.XFCC
		local []string
		in    string
		want  string
	}{
		{name: "append forward appends this hop after what came in",
			x: runtime.XFCC{Action: runtime.XFCCAppendForward, URI: true}, local: []string{by}, in: forged,
			want: forged + ",By=" + by + ";Hash=" + hash + ";URI=" + peerURI.String()},
		{name: "append forward without a header sets this hop",
			x: runtime.XFCC{Action: runtime.XFCCAppendForward, URI: true}, local: []string{by},
			want: "By=" + by + ";Hash=" + hash + ";URI=" + peerURI.String()},
		{name: "sanitize set replaces a forged header",
			x: runtime.XFCC{Action: runtime.XFCCSanitizeSet, URI: true}, local: []string{by}, in: forged,
			want: "By=" + by + ";Hash=" + hash + ";URI=" + peerURI.String()},
		{name: "no local certificate URI: no By",
			x: runtime.XFCC{Action: runtime.XFCCSanitizeSet, URI: true}, in: forged,
			want: "Hash=" + hash + ";URI=" + peerURI.String()},
		{name: "subject, uri and dns in Envoy's order",
			x: runtime.XFCC{Action: runtime.XFCCSanitizeSet, Subject: true, URI: true, DNS: true}, local: []string{by},
			want: "By=" + by + ";Hash=" + hash + `;Subject="";URI=` + peerURI.String() + ";DNS=client.local"},
		{name: "forward only keeps what came in over mTLS",
			x: runtime.XFCC{Action: runtime.XFCCForwardOnly, URI: true}, local: []string{by}, in: forged, want: forged},
		{name: "sanitize removes it even over mTLS",
			x: runtime.XFCC{Action: runtime.XFCCSanitize}, local: []string{by}, in: forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://echo/", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}
			r = r.WithContext(WithLocalURIs(r.Context(), tc.local))
			if tc.in != "" {
				r.Header.Set(hdrXFCC, tc.in)
			}
			applyXFCC(r, tc.x)
			if got := r.Header.Get(hdrXFCC); got != tc.want {
				t.Errorf("xfcc =\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}
