package compile

import (
	"fmt"
	"math"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The proxy does not run the generated protoc-gen-validate Validate methods
// (linking them costs ~2 MB of resident code, issue 5): parsing checks the
// fields it reads with these helpers instead, and trellisd validates every
// resource it sends. The rules mirror the PGV annotations of Envoy's protos.

// maxHeaderBytes is Envoy's bound on a header name or value in config
// (HeaderValue.key and .value: max_bytes 16384).
const maxHeaderBytes = 16384

// maxHeadersToAdd is Envoy's bound on a route's *_headers_to_add lists.
const maxHeadersToAdd = 1000

// nonEmpty rejects an empty required string (PGV min_len: 1).
func nonEmpty(path, s string) error {
	if s == "" {
		return fmt.Errorf("%s: empty", path)
	}
	return nil
}

// headerValue checks a string that ends up in a header line or a request
// target (PGV well_known_regex HTTP_HEADER_VALUE, strict: false): no NUL,
// CR or LF, and at most maxHeaderBytes.
func headerValue(path, s string) error {
	if len(s) > maxHeaderBytes {
		return fmt.Errorf("%s: %d bytes exceeds %d", path, len(s), maxHeaderBytes)
	}
	if i := strings.IndexAny(s, "\x00\r\n"); i >= 0 {
		return fmt.Errorf("%s: %q: NUL, CR or LF at byte %d", path, s, i)
	}
	return nil
}

// headerName checks a required header name (PGV min_len: 1 and
// HTTP_HEADER_NAME, strict: false).
func headerName(path, s string) error {
	if err := nonEmpty(path, s); err != nil {
		return err
	}
	return headerValue(path, s)
}

// positiveDuration rejects a set duration that is not positive (PGV
// duration gt: {}); nil is allowed and means the caller's default.
func positiveDuration(path string, d *durationpb.Duration) error {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if d.AsDuration() <= 0 {
		return fmt.Errorf("%s: %v must be positive", path, d.AsDuration())
	}
	return nil
}

// percentValue checks an envoy.type.v3.Percent (PGV double gte 0, lte 100).
func percentValue(path string, p *typev3.Percent) error {
	if v := p.GetValue(); v < 0 || v > 100 || math.IsNaN(v) {
		return fmt.Errorf("%s.value: %v out of [0, 100]", path, v)
	}
	return nil
}

// fraction checks a FractionalPercent's denominator (PGV enum defined_only).
func fraction(path string, f *typev3.FractionalPercent) error {
	switch f.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED, typev3.FractionalPercent_TEN_THOUSAND, typev3.FractionalPercent_MILLION:
		return nil
	}
	return fmt.Errorf("%s.denominator: unsupported %v", path, f.GetDenominator())
}

// runtimeFraction checks a set RuntimeFractionalPercent: default_value is
// required (PGV) and its denominator defined.
func runtimeFraction(path string, rf *corev3.RuntimeFractionalPercent) error {
	if rf == nil {
		return nil
	}
	if rf.GetDefaultValue() == nil {
		return fmt.Errorf("%s.default_value: required", path)
	}
	return fraction(path+".default_value", rf.GetDefaultValue())
}

// checkHeader checks a header to add (HeaderValue: key required, key and
// value header-safe and bounded). raw_value is bounded the same way.
func checkHeader(path string, h *corev3.HeaderValue) error {
	if h == nil {
		return fmt.Errorf("%s: required", path)
	}
	if err := headerName(path+".key", h.GetKey()); err != nil {
		return err
	}
	if err := headerValue(path+".value", h.GetValue()); err != nil {
		return err
	}
	return headerValue(path+".raw_value", string(h.GetRawValue()))
}
