package listener

import (
	"encoding/binary"
	"errors"
	"strings"
)

// TLS record and handshake constants (RFC 8446 §5.1, §4).
const (
	recordHeaderLen      = 5
	recordTypeHandshake  = 0x16
	handshakeClientHello = 0x01
	maxPlaintext         = 16384 // a record's largest payload
	extServerName        = 0
	extALPN              = 16
)

var (
	// errShort says more bytes are needed; need holds how many in total.
	errShort = errors.New("clienthello: short")
	// errNotHello says the bytes are not a TLS ClientHello.
	errNotHello = errors.New("clienthello: not a TLS ClientHello")
)

// clientHello is what filter-chain matching reads from a ClientHello.
type clientHello struct {
	serverName string   // SNI host_name, lower case; "" when absent
	alpn       []string // offered application protocols, in order
}

// parseClientHello reads the ClientHello at the start of b, a TLS record
// stream. It returns errShort with the total byte count it needs when b is
// a prefix of a plausible ClientHello, and errNotHello when b cannot be
// one. Only a ClientHello that fits one record is parsed (Go, BoringSSL
// and every common client send it so); a longer one is errNotHello.
func parseClientHello(b []byte) (clientHello, int, error) {
	var h clientHello
	if len(b) < 1 {
		return h, recordHeaderLen, errShort
	}
	if b[0] != recordTypeHandshake {
		return h, 0, errNotHello
	}
	if len(b) < recordHeaderLen {
		return h, recordHeaderLen, errShort
	}
	if b[1] != 3 { // legacy_record_version major is 3 for SSL 3.0 up to TLS 1.3
		return h, 0, errNotHello
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	if n < 4 || n > maxPlaintext {
		return h, 0, errNotHello
	}
	if len(b) < recordHeaderLen+n {
		return h, recordHeaderLen + n, errShort
	}
	msg := b[recordHeaderLen : recordHeaderLen+n]
	if msg[0] != handshakeClientHello {
		return h, 0, errNotHello
	}
	hlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if hlen > len(msg)-4 {
		return h, 0, errNotHello
	}
	r := reader(msg[4 : 4+hlen])
	// legacy_version, random, legacy_session_id, cipher_suites,
	// legacy_compression_methods.
	if !r.skip(2+32) || !r.skipVec(1) || !r.skipVec(2) || !r.skipVec(1) {
		return h, 0, errNotHello
	}
	if len(r) == 0 {
		return h, 0, nil // no extensions
	}
	exts, ok := r.vec(2)
	if !ok {
		return h, 0, errNotHello
	}
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec(2)
		if !ok1 || !ok2 {
			return h, 0, errNotHello
		}
		switch typ {
		case extServerName:
			names, ok := data.vec(2)
			if !ok {
				return h, 0, errNotHello
			}
			for len(names) > 0 {
				kind, ok1 := names.u8()
				name, ok2 := names.vec(2)
				if !ok1 || !ok2 {
					return h, 0, errNotHello
				}
				if kind == 0 && h.serverName == "" { // host_name
					h.serverName = strings.ToLower(strings.TrimSuffix(string(name), "."))
				}
			}
		case extALPN:
			protos, ok := data.vec(2)
			if !ok {
				return h, 0, errNotHello
			}
			for len(protos) > 0 {
				p, ok := protos.vec(1)
				if !ok || len(p) == 0 {
					return h, 0, errNotHello
				}
				h.alpn = append(h.alpn, string(p))
			}
		}
	}
	return h, 0, nil
}

// reader consumes a byte slice front to back; methods report false when
// too few bytes remain.
type reader []byte

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) u8() (byte, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*r)
	*r = (*r)[2:]
	return v, true
}

// vec reads a vector with a lenBytes-long length prefix (1 or 2).
func (r *reader) vec(lenBytes int) (reader, bool) {
	var n int
	switch lenBytes {
	case 1:
		v, ok := r.u8()
		if !ok {
			return nil, false
		}
		n = int(v)
	default:
		v, ok := r.u16()
		if !ok {
			return nil, false
		}
		n = int(v)
	}
	if len(*r) < n {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

func (r *reader) skipVec(lenBytes int) bool {
	_, ok := r.vec(lenBytes)
	return ok
}
