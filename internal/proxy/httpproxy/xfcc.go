package httpproxy

import (
	"context"
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

// localURIsKey carries, in a connection's context, the URI SANs of the
// certificate this proxy presented on it.
type localURIsKey struct{}

// WithLocalURIs returns ctx carrying the URI SANs of the certificate this
// proxy presented on the connection (Envoy's uriSanLocalCertificate): the
// listener sets it on TLS connections, and x-forwarded-client-cert names
// them as By=. Without it the element has no By=.
func WithLocalURIs(ctx context.Context, uris []string) context.Context {
	if len(uris) == 0 {
		return ctx
	}
	return context.WithValue(ctx, localURIsKey{}, uris)
}

// currentXFCC describes this hop as Envoy does
// (ConnectionManagerUtility::mutateXfccRequestHeader): By= for each URI SAN
// of our own certificate, Hash= of the peer's, then the parts
// set_current_client_cert_details asks for, in Envoy's order (Subject, URI,
// DNS). URI= names the peer's first URI SAN and is present, if empty, even
// when it has none.
func currentXFCC(r *http.Request, x runtime.XFCC) string {
	c := r.TLS.PeerCertificates[0]
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	if by, ok := r.Context().Value(localURIsKey{}).([]string); ok {
		for _, u := range by {
			b.WriteString("By=")
			b.WriteString(u)
			b.WriteByte(';')
		}
	}
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if x.Subject {
		b.WriteString(`;Subject="`)
		b.WriteString(strings.ReplaceAll(c.Subject.String(), `"`, `\"`))
		b.WriteByte('"')
	}
	if x.URI {
		b.WriteString(";URI=")
		if len(c.URIs) > 0 {
			b.WriteString(c.URIs[0].String())
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
