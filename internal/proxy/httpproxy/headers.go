package httpproxy

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// mutation is a runtime.HeaderMutation with canonical keys and prebuilt
// value slices. The value slices are shared by every request and capped at
// their length, so an append (Add) copies instead of writing into them.
type mutation struct {
	remove []string
	set    []hdr
	add    []hdr
}

type hdr struct {
	key    string   // canonical; empty for the authority
	values []string // one element, len == cap
}

func (m *mutation) empty() bool { return len(m.remove)+len(m.set)+len(m.add) == 0 }

func compileMutation(hm runtime.HeaderMutation) mutation {
	var m mutation
	for _, n := range hm.Remove {
		m.remove = append(m.remove, http.CanonicalHeaderKey(n))
	}
	for _, h := range hm.Set {
		m.set = append(m.set, compileHdr(h))
	}
	for _, h := range hm.Add {
		m.add = append(m.add, compileHdr(h))
	}
	return m
}

func compileHdr(h runtime.Header) hdr {
	key := http.CanonicalHeaderKey(h.Name)
	if n := strings.ToLower(h.Name); n == ":authority" || n == "host" {
		key = ""
	}
	return hdr{key: key, values: []string{h.Value}[:1:1]}
}

// apply edits h in Envoy's order: remove, set, add. host is the request's
// authority (nil for responses); a set or add of "host"/":authority"
// replaces it.
func (m *mutation) apply(h http.Header, host *string) {
	for _, k := range m.remove {
		delete(h, k)
	}
	for _, s := range m.set {
		if s.key == "" {
			if host != nil {
				*host = s.values[0]
			}
			continue
		}
		h[s.key] = s.values
	}
	for _, a := range m.add {
		if a.key == "" {
			if host != nil {
				*host = a.values[0]
			}
			continue
		}
		if old := h[a.key]; len(old) > 0 {
			h[a.key] = append(old, a.values[0])
		} else {
			h[a.key] = a.values
		}
	}
}

const (
	hdrRequestID    = "X-Request-Id"
	hdrForwardedFor = "X-Forwarded-For"
	hdrForwardProto = "X-Forwarded-Proto"
	hdrAttemptCount = "X-Envoy-Attempt-Count"
	hdrContentType  = "Content-Type"
)

var (
	protoHTTP     = []string{"http"}[:1:1]
	trailersValue = []string{"trailers"}[:1:1]
	upgradeValue  = []string{"Upgrade"}[:1:1]
	emptyValue    = []string{""}[:1:1]
	// attemptValues are shared x-envoy-attempt-count values.
	attemptValues = func() [][]string {
		v := make([][]string, 11)
		for i := range v {
			v[i] = []string{itoa(i)}[:1:1]
		}
		return v
	}()
)

// isHopHeader reports whether the canonical key k names a hop-by-hop
// header (RFC 9110 section 7.6.1, and the older ones proxies still meet).
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// headerHasToken reports whether the comma-separated values vs contain
// token, compared case-insensitively (Connection: keep-alive, Upgrade).
func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for len(v) > 0 {
			var t string
			if i := strings.IndexByte(v, ','); i >= 0 {
				t, v = v[:i], v[i+1:]
			} else {
				t, v = v, ""
			}
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// teTrailers reports whether a TE header asks for trailers, the one TE
// value a proxy passes on.
func teTrailers(te []string) bool { return len(te) > 0 && headerHasToken(te, "trailers") }

// upstreamHeader copies in without hop-by-hop headers (the
// fixed ones and those the Connection header lists) into the empty map
// out. The copy shares in's value slices, capped so that an append copies.
func upstreamHeader(out, in http.Header) {
	conn := in["Connection"]
	for k, v := range in {
		if isHopHeader(k) || (len(conn) > 0 && headerHasToken(conn, k)) {
			continue
		}
		out[k] = v[:len(v):len(v)]
	}
}

// stripHopHeaders removes hop-by-hop headers from h in place.
func stripHopHeaders(h http.Header) {
	conn := h["Connection"]
	for k := range h {
		if isHopHeader(k) || (len(conn) > 0 && headerHasToken(conn, k)) {
			delete(h, k)
		}
	}
}

func attemptValue(n int) []string {
	if n < len(attemptValues) {
		return attemptValues[n]
	}
	return []string{itoa(n)}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	const hex = "0123456789abcdef"
	var u [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i] = byte(hi >> (8 * i))
		u[8+i] = byte(lo >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:])
}

// retryOn is a set of Envoy retry_on conditions.
type retryOn uint32

const (
	on5xx retryOn = 1 << iota
	onGatewayError
	onConnectFailure
	onRefusedStream
	onReset
	onRetriableStatus
	onRetriable4xx
	onGRPCCancelled
	onGRPCDeadline
	onGRPCResourceExhausted
	onGRPCUnavailable
	onGRPCInternal
)

var retryOnNames = map[string]retryOn{
	"5xx":                    on5xx,
	"gateway-error":          onGatewayError,
	"connect-failure":        onConnectFailure,
	"refused-stream":         onRefusedStream,
	"reset":                  onReset,
	"retriable-status-codes": onRetriableStatus,
	"retriable-4xx":          onRetriable4xx,
	"cancelled":              onGRPCCancelled,
	"deadline-exceeded":      onGRPCDeadline,
	"resource-exhausted":     onGRPCResourceExhausted,
	"unavailable":            onGRPCUnavailable,
	"internal":               onGRPCInternal,
}

type retryPolicy struct {
	attempts uint32 // retries after the first try
	perTry   time.Duration
	on       retryOn
	codes    []uint32
	// Back-off and host selection (transport.go); zero: Envoy's defaults.
	backOffBase, backOffMax time.Duration
	previousHosts           bool
	hostAttempts            uint32
	previousPriorities      bool
}

// compileRetry returns nil when p allows no retry. Unknown retry_on names
// are ignored (compile has already rejected what the proxy cannot honour).
func compileRetry(p *runtime.RetryPolicy) *retryPolicy {
	if p == nil || (p.Attempts == 0 && p.PerTryTimeout == 0) {
		return nil
	}
	rp := &retryPolicy{attempts: p.Attempts, perTry: p.PerTryTimeout, codes: p.StatusCodes,
		backOffBase: p.BackOff.Base, backOffMax: p.BackOff.Max, previousHosts: p.PreviousHosts,
		hostAttempts: p.HostSelectionAttempts, previousPriorities: p.PreviousPriorities}
	for _, on := range p.RetryOn {
		for _, name := range strings.Split(on, ",") {
			rp.on |= retryOnNames[strings.TrimSpace(name)]
		}
	}
	return rp
}

// failure classifies one attempt's outcome.
type failure uint8

const (
	failNone failure = iota
	failConnect
	failRefusedStream
	failReset
	failTimeout // per-try timeout
)

// retriable reports whether an attempt that ended with f or with response
// status code (and grpc-status, "" when absent) may be retried.
func (p *retryPolicy) retriable(f failure, code int, grpcStatus string) bool {
	switch f {
	case failConnect:
		return p.on&(on5xx|onGatewayError|onConnectFailure) != 0
	case failRefusedStream:
		return p.on&(on5xx|onGatewayError|onRefusedStream|onReset) != 0
	case failReset:
		return p.on&(on5xx|onGatewayError|onReset) != 0
	case failTimeout:
		return p.on&(on5xx|onGatewayError) != 0
	}
	switch {
	case code >= 500 && p.on&on5xx != 0:
		return true
	case (code == 502 || code == 503 || code == 504) && p.on&onGatewayError != 0:
		return true
	case code == http.StatusConflict && p.on&onRetriable4xx != 0:
		return true
	}
	if p.on&onRetriableStatus != 0 {
		for _, c := range p.codes {
			if int(c) == code {
				return true
			}
		}
	}
	switch grpcStatus {
	case "":
		return false
	case "1":
		return p.on&onGRPCCancelled != 0
	case "4":
		return p.on&onGRPCDeadline != 0
	case "8":
		return p.on&onGRPCResourceExhausted != 0
	case "13":
		return p.on&onGRPCInternal != 0
	case "14":
		return p.on&onGRPCUnavailable != 0
	}
	return false
}
