package identity

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The proxy stays free of Istio's Go packages (cmd/trellis-proxy's
// TestLeanDependencies), so it speaks IstioCertificateService
// (istio.io/api security/v1alpha1/ca.proto) with this hand-written codec for
// its two small messages:
//
//	message IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3; google.protobuf.Struct metadata = 4; }
//	message IstioCertificateResponse { repeated string cert_chain = 1; }
const createCertificateMethod = "/istio.v1.auth.IstioCertificateService/CreateCertificate"

// csrRequest is IstioCertificateRequest without metadata (the proxy sends
// none; its identity travels in gRPC metadata).
type csrRequest struct {
	CSR              string
	ValidityDuration int64 // seconds
}

// csrResponse is IstioCertificateResponse.
type csrResponse struct {
	CertChain []string
}

func (r *csrRequest) marshal() []byte {
	var b []byte
	if r.CSR != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, r.CSR)
	}
	if r.ValidityDuration != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.ValidityDuration))
	}
	return b
}

// unmarshal decodes an IstioCertificateResponse, skipping unknown fields as
// proto3 does.
func (r *csrResponse) unmarshal(b []byte) error {
	r.CertChain = nil
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("identity: decode response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 {
			if typ != protowire.BytesType {
				return errors.New("identity: decode response: cert_chain is not length-delimited")
			}
			s, n := protowire.ConsumeString(b)
			if n < 0 {
				return fmt.Errorf("identity: decode response: %w", protowire.ParseError(n))
			}
			r.CertChain = append(r.CertChain, s)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("identity: decode response: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// wireCodec is a gRPC codec for csrRequest and csrResponse. It is named
// "proto" so the content type is application/grpc+proto, as the server
// expects.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) ([]byte, error) {
	r, ok := v.(*csrRequest)
	if !ok {
		return nil, fmt.Errorf("identity: codec: cannot marshal %T", v)
	}
	return r.marshal(), nil
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	r, ok := v.(*csrResponse)
	if !ok {
		return fmt.Errorf("identity: codec: cannot unmarshal into %T", v)
	}
	return r.unmarshal(data)
}
