package httpproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

const hdrXFCC = "X-Forwarded-Client-Cert"

// applyXFCC handles x-forwarded-client-cert as Envoy's
// forward_client_cert_details: a header from a client that did not present
// a certificate is removed (unless ALWAYS_FORWARD_ONLY), so that no caller
// can claim an identity it did not prove.
func applyXFCC(r *http.Request, x runtime.XFCC) {
	mtls := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	switch x.Action {
	case runtime.XFCCAlwaysForwardOnly:
		return
	case runtime.XFCCSanitize:
		delete(r.Header, hdrXFCC)
		return
	case runtime.XFCCForwardOnly:
		if !mtls {
			delete(r.Header, hdrXFCC)
		}
		return
	}
	if !mtls {
		delete(r.Header, hdrXFCC)
		return
	}
	cur := currentXFCC(r, x)
	if x.Action == runtime.XFCCAppendForward {
		if prev := r.Header[hdrXFCC]; len(prev) > 0 {
			r.Header[hdrXFCC] = []string{strings.Join(prev, ",") + "," + cur}
			return
		}
	}
	r.Header[hdrXFCC] = []string{cur}
}

// currentXFCC describes this hop's client certificate: Hash always, then
// the parts set_current_client_cert_details asks for.
func currentXFCC(r *http.Request, x runtime.XFCC) string {
	c := r.TLS.PeerCertificates[0]
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if x.Subject {
		b.WriteString(`;Subject="`)
		b.WriteString(strings.ReplaceAll(c.Subject.String(), `"`, `\"`))
		b.WriteByte('"')
	}
	if x.URI {
		for _, u := range c.URIs {
			b.WriteString(";URI=")
			b.WriteString(u.String())
		}
	}
	if x.DNS {
		for _, d := range c.DNSNames {
			b.WriteString(";DNS=")
			b.WriteString(d)
		}
	}
	return b.String()
}
