package authz

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// matcher is one compiled permission or principal.
type matcher interface{ match(r *Request) bool }

type anyMatcher struct{}

func (anyMatcher) match(*Request) bool { return true }

type andMatcher []matcher

func (a andMatcher) match(r *Request) bool {
	for _, m := range a {
		if !m.match(r) {
			return false
		}
	}
	return true
}

type orMatcher []matcher

func (o orMatcher) match(r *Request) bool { return anyMatch(o, r) }

type notMatcher struct{ m matcher }

func (n notMatcher) match(r *Request) bool { return !n.m.match(r) }

type ipWhich uint8

const (
	directRemoteIP ipWhich = iota
	remoteIP
	destinationIP
)

type ipMatcher struct {
	which  ipWhich
	prefix netip.Prefix
}

func (m ipMatcher) match(r *Request) bool {
	var ip netip.Addr
	switch m.which {
	case directRemoteIP:
		ip = r.DirectRemoteIP
	case remoteIP:
		ip = r.remoteIP()
	case destinationIP:
		ip = r.DestinationIP
	}
	return ip.IsValid() && m.prefix.Contains(ip.Unmap())
}

// portMatcher matches destination ports in [lo, hi).
type portMatcher struct{ lo, hi uint32 }

func (m portMatcher) match(r *Request) bool {
	p := uint32(r.DestinationPort)
	return p >= m.lo && p < m.hi
}

type sniMatcher struct{ s stringMatcher }

func (m sniMatcher) match(r *Request) bool { return m.s.match(r.SNI) }

type pathMatcher struct{ s stringMatcher }

func (m pathMatcher) match(r *Request) bool { return r.HTTP && m.s.match(r.pathOnly()) }

// authnMatcher is Envoy's authenticated principal: with no name, any
// verified peer certificate; with a name, the URI SANs, then the DNS SANs,
// then the subject.
type authnMatcher struct{ name *stringMatcher }

func (m authnMatcher) match(r *Request) bool {
	if r.Peer == nil {
		return false
	}
	if m.name == nil {
		return true
	}
	for _, u := range r.Peer.URIs {
		if m.name.match(u) {
			return true
		}
	}
	for _, d := range r.Peer.DNS {
		if m.name.match(d) {
			return true
		}
	}
	return m.name.match(r.Peer.Subject)
}

type headerKind uint8

const (
	headerString headerKind = iota
	headerPresent
	headerRange
)

type headerMatcher struct {
	key          string // canonical key, or a lower-case pseudo-header
	kind         headerKind
	str          stringMatcher
	present      bool
	lo, hi       int64 // range [lo, hi)
	invert       bool
	missingEmpty bool
}

func (m headerMatcher) match(r *Request) bool {
	if !r.HTTP {
		return false
	}
	v, ok := r.header(m.key)
	if m.kind == headerPresent {
		return (ok == m.present) != m.invert
	}
	if !ok {
		if !m.missingEmpty {
			return m.invert
		}
		v = ""
	}
	var res bool
	switch m.kind {
	case headerRange:
		n, err := strconv.ParseInt(v, 10, 64)
		res = err == nil && n >= m.lo && n < m.hi
	default:
		res = m.str.match(v)
	}
	return res != m.invert
}

type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func (m metadataMatcher) match(r *Request) bool {
	v := lookup(r.Metadata[m.filter], m.path)
	return m.value.match(v) != m.invert
}

// lookup walks path through nested structs; nil when absent.
func lookup(s *structpb.Struct, path []string) *structpb.Value {
	var v *structpb.Value
	for i, k := range path {
		if s == nil {
			return nil
		}
		v = s.GetFields()[k]
		if v == nil {
			return nil
		}
		if i < len(path)-1 {
			s = v.GetStructValue()
		}
	}
	return v
}

type valueKind uint8

const (
	valueNull valueKind = iota
	valueDoubleExact
	valueDoubleRange
	valueString
	valueBool
	valuePresent
	valueList
	valueOr
)

type valueMatcher struct {
	kind   valueKind
	str    stringMatcher
	lo, hi float64
	b      bool
	sub    []valueMatcher
}

func (m valueMatcher) match(v *structpb.Value) bool {
	switch m.kind {
	case valueNull:
		_, null := v.GetKind().(*structpb.Value_NullValue)
		return null
	case valuePresent:
		return (v.GetKind() != nil) == m.b
	case valueDoubleExact:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		return ok && n.NumberValue == m.lo
	case valueDoubleRange:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		return ok && n.NumberValue >= m.lo && n.NumberValue < m.hi
	case valueString:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		return ok && m.str.match(s.StringValue)
	case valueBool:
		b, ok := v.GetKind().(*structpb.Value_BoolValue)
		return ok && b.BoolValue == m.b
	case valueList:
		l, ok := v.GetKind().(*structpb.Value_ListValue)
		if !ok {
			return false
		}
		for _, e := range l.ListValue.GetValues() {
			if m.sub[0].match(e) {
				return true
			}
		}
		return false
	case valueOr:
		for _, s := range m.sub {
			if s.match(v) {
				return true
			}
		}
	}
	return false
}

type stringKind uint8

const (
	matchExact stringKind = iota
	matchPrefix
	matchSuffix
	matchContains
	matchRegex
)

// stringMatcher is Envoy's StringMatcher. ignore_case does not apply to
// safe_regex, as in Envoy.
type stringMatcher struct {
	kind  stringKind
	value string // lower case when fold
	re    *regexp.Regexp
	fold  bool
}

func compileString(path string, m *matcherv3.StringMatcher) (stringMatcher, error) {
	out := stringMatcher{fold: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = matchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = matchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = matchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = matchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(path+".safe_regex", p.SafeRegex)
		if err != nil {
			return out, err
		}
		out.kind, out.re, out.fold = matchRegex, re, false
	case nil:
		return out, fmt.Errorf("%s: no match pattern", path)
	default:
		return out, fmt.Errorf("%s: unsupported string match %T", path, p)
	}
	if out.fold {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// compileRegex anchors the expression: Envoy's safe_regex is a full match.
func compileRegex(path string, m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + m.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("%s.regex: %w", path, err)
	}
	return re, nil
}

func (m *stringMatcher) match(s string) bool {
	if m.kind == matchRegex {
		return m.re.MatchString(s)
	}
	if m.fold {
		switch m.kind {
		case matchExact:
			return strings.EqualFold(s, m.value)
		case matchPrefix:
			return len(s) >= len(m.value) && strings.EqualFold(s[:len(m.value)], m.value)
		case matchSuffix:
			return len(s) >= len(m.value) && strings.EqualFold(s[len(s)-len(m.value):], m.value)
		case matchContains:
			return strings.Contains(strings.ToLower(s), m.value)
		}
	}
	switch m.kind {
	case matchExact:
		return s == m.value
	case matchPrefix:
		return strings.HasPrefix(s, m.value)
	case matchSuffix:
		return strings.HasSuffix(s, m.value)
	case matchContains:
		return strings.Contains(s, m.value)
	}
	return false
}
