package identity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// The hand-written codec agrees with Istio's generated messages.
func TestWireMatchesIstio(t *testing.T) {
	req := &csrRequest{CSR: "-----BEGIN CERTIFICATE REQUEST-----\n...", ValidityDuration: 86400}
	var got securityv1alpha1.IstioCertificateRequest
	if err := proto.Unmarshal(req.marshal(), &got); err != nil {
		t.Fatal(err)
	}
	if got.GetCsr() != req.CSR || got.GetValidityDuration() != req.ValidityDuration {
		t.Errorf("request decoded by Istio's type = %v", &got)
	}

	want := []string{"leaf", "", "root"}
	b, err := proto.Marshal(&securityv1alpha1.IstioCertificateResponse{CertChain: want})
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, 0x10, 0x07) // an unknown varint field 2 is skipped
	var resp csrResponse
	if err := resp.unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, resp.CertChain); diff != "" {
		t.Errorf("cert_chain (-want +got):\n%s", diff)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0x08, 0x01}, {0xff}} {
		if err := resp.unmarshal(bad); err == nil {
			t.Errorf("unmarshal(%x) accepted a bad message", bad)
		}
	}
}

// FuzzResponse: decoding any bytes never panics, and what decodes
// re-encodes to the same chain through Istio's type.
func FuzzResponse(f *testing.F) {
	seed, _ := proto.Marshal(&securityv1alpha1.IstioCertificateResponse{CertChain: []string{"a", "bc"}})
	f.Add(seed)
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r csrResponse
		if err := r.unmarshal(b); err != nil {
			return
		}
		var istio securityv1alpha1.IstioCertificateResponse
		if err := (proto.UnmarshalOptions{}).Unmarshal(b, &istio); err != nil {
			return // Istio's decoder also checks UTF-8; ours leaves that to PEM parsing
		}
		if !cmp.Equal(istio.GetCertChain(), r.CertChain, cmp.Comparer(func(a, b []string) bool {
			return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b))
		})) {
			t.Fatalf("chain %q, Istio's decoder %q", r.CertChain, istio.GetCertChain())
		}
	})
}
