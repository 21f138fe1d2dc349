package authz

import (
	"crypto/x509"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"net/http"
	"net/netip"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// Action is what a policy set does when one of its policies matches.
type Action uint8

const (
	Allow Action = iota // allow only requests some policy matches
	Deny                // deny requests some policy matches
	Log                 // allow everything; Matched says whether to log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	case Log:
		return "LOG"
	}
	return "UNKNOWN"
}

// Request is what a policy is evaluated against. The zero value is a
// connection from nowhere with no peer certificate and no HTTP request.
type Request struct {
	// DirectRemoteIP is the downstream peer of the connection (Envoy's
	// direct_remote_ip and the deprecated source_ip).
	DirectRemoteIP netip.Addr
	// RemoteIP is the original client as the connection manager determined
	// it (x-forwarded-for); the zero Addr means DirectRemoteIP.
	RemoteIP netip.Addr
	// DestinationIP and DestinationPort are the local address the
	// connection arrived on.
	DestinationIP   netip.Addr
	DestinationPort uint16
	// SNI is the requested server name of a TLS connection; "" for none.
	SNI string
	// Peer is the verified client certificate; nil for plain text or a TLS
	// connection without a client certificate.
	Peer *Peer

	// HTTP is true for an HTTP request; header and url_path matchers only
	// match when it is set.
	HTTP bool
	// Method, Host (:authority), Path (:path, with the query) and Scheme.
	Method, Host, Path, Scheme string
	// Headers are the request headers, canonical keys as net/http keeps them.
	Headers http.Header
	// Metadata is the request's dynamic metadata by filter namespace
	// ("envoy.filters.http.jwt_authn", ...). nil is empty.
	Metadata map[string]*structpb.Struct
}

// Peer is a verified peer certificate's identities.
type Peer struct {
	URIs    []string // URI SANs (SPIFFE IDs)
	DNS     []string // DNS SANs
	Subject string   // RFC 2253 subject
}

// Decision is the outcome of one evaluation.
type Decision struct {
	// Allowed is the verdict under the policy set's action.
	Allowed bool
	// Matched is true when a policy matched; Policy names the first one
	// (policies are tried in name order).
	Matched bool
	Policy  string
}

// Policy is a compiled RBAC: an action and named policies. It is immutable
// and safe for concurrent use. A nil *Policy allows everything (an RBAC
// filter without rules enforces nothing).
type Policy struct {
	action   Action
	policies []namedPolicy // sorted by name
}

type namedPolicy struct {
	name        string
	permissions []matcher // any
	principals  []matcher // any
}

// Action returns the policy set's action.
func (p *Policy) Action() Action {
	if p == nil {
		return Allow
	}
	return p.action
}

// Names returns the policy names in evaluation order.
func (p *Policy) Names() []string {
	if p == nil {
		return nil
	}
	out := make([]string, len(p.policies))
	for i := range p.policies {
		out[i] = p.policies[i].name
	}
	return out
}

// Evaluate decides r. It does not modify r and does not block.
func (p *Policy) Evaluate(r *Request) Decision {
	if p == nil {
		return Decision{Allowed: true}
	}
	for i := range p.policies {
		np := &p.policies[i]
		if anyMatch(np.permissions, r) && anyMatch(np.principals, r) {
			return Decision{Allowed: p.action != Deny, Matched: true, Policy: np.name}
		}
	}
	return Decision{Allowed: p.action != Allow}
}

func anyMatch(ms []matcher, r *Request) bool {
	for _, m := range ms {
		if m.match(r) {
			return true
		}
	}
	return false
}

// header returns the value a header matcher sees: pseudo-headers from the
// request line, repeated headers joined with ",", and whether it is present.
func (r *Request) header(canon string) (string, bool) {
	switch canon {
	case ":method":
		return r.Method, r.Method != ""
	case ":authority", "Host":
		return r.Host, r.Host != ""
	case ":path":
		return r.Path, r.Path != ""
	case ":scheme":
		return r.Scheme, r.Scheme != ""
	}
	v, ok := r.Headers[canon]
	switch {
	case !ok || len(v) == 0:
		return "", false
	case len(v) == 1:
		return v[0], true
	}
	return strings.Join(v, ","), true
}

// pathOnly is :path without the query string or fragment.
func (r *Request) pathOnly() string {
	p := r.Path
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return p
}

func (r *Request) remoteIP() netip.Addr {
	if r.RemoteIP.IsValid() {
		return r.RemoteIP
	}
	return r.DirectRemoteIP
}

// NewPeer returns the identities of a verified peer certificate; nil for nil.
func NewPeer(cert *x509.Certificate) *Peer {
	if cert == nil {
		return nil
	}
	p := &Peer{DNS: cert.DNSNames, Subject: cert.Subject.String()}
	for _, u := range cert.URIs {
		p.URIs = append(p.URIs, u.String())
	}
	return p
}

// MetadataMatch is a compiled envoy.type.matcher.v3.MetadataMatcher, for
// filters that gate on dynamic metadata (ext_authz filter_enabled_metadata).
type MetadataMatch struct{ m metadataMatcher }

// CompileMetadata compiles m.
func CompileMetadata(m *matcherv3.MetadataMatcher) (*MetadataMatch, error) {
	mm, err := compileMetadata("metadata", m)
	if err != nil {
		return nil, err
	}
	return &MetadataMatch{m: mm.(metadataMatcher)}, nil
}

// Match reports whether md (dynamic metadata by namespace) matches.
func (m *MetadataMatch) Match(md map[string]*structpb.Struct) bool {
	return m.m.match(&Request{Metadata: md})
}
