package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Builders for hand-written Envoy RBAC configs, shaped as Istio emits them.

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}
func suffix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}
func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func permAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func permPath(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}
func permHeader(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}}}
}
func permPort(p uint32) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}
}
func permNot(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}
func permAnd(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}
func permOr(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}
func cidr(s string, n uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: s, PrefixLen: wrapperspb.UInt32(n)}
}

func idAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}
func idAuthn(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}
func idNot(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}
func idAnd(ps ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}
func idOr(ps ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}
func idMeta(filter string, path []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	mm := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, k := range path {
		mm.Path = append(mm.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: mm}}
}
func vString(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}
func vList(m *matcherv3.ValueMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: m}}}}
}

func rbac(action rbacv3.RBAC_Action, pols map[string]*rbacv3.Policy) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: pols}
}
func pol(perms []*rbacv3.Permission, ids []*rbacv3.Principal) *rbacv3.Policy {
	return &rbacv3.Policy{Permissions: perms, Principals: ids}
}

const jwtNS = "envoy.filters.http.jwt_authn"

func httpReq(method, path string) *Request {
	return &Request{
		HTTP: true, Method: method, Host: "reviews:9080", Path: path, Scheme: "http",
		Headers:         http.Header{},
		DirectRemoteIP:  netip.MustParseAddr("127.0.10.1"),
		DestinationIP:   netip.MustParseAddr("127.0.20.1"),
		DestinationPort: 9080,
	}
}

func with(r *Request, f func(*Request)) *Request { f(r); return r }

func peer(uri string) func(*Request) {
	return func(r *Request) { r.Peer = &Peer{URIs: []string{uri}} }
}

func claims(t *testing.T, m map[string]any) func(*Request) {
	s, err := structpb.NewStruct(map[string]any{"payload": m})
	if err != nil {
		t.Fatal(err)
	}
	return func(r *Request) { r.Metadata = map[string]*structpb.Struct{jwtNS: s} }
}

func TestEvaluate(t *testing.T) {
	bookinfo := "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	allowProductpage := rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"ns[default]-policy[allow-pp]-rule[0]": pol(
			[]*rbacv3.Permission{permAnd(permOr(permHeader(":method", exact("GET"))), permOr(permPath(prefix("/api/"))))},
			[]*rbacv3.Principal{idAnd(idOr(idAuthn(exact(bookinfo))))}),
	})
	denyAdmin := rbac(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"deny-admin": pol([]*rbacv3.Permission{permPath(exact("/admin"))}, []*rbacv3.Principal{idAny()}),
	})
	tests := []struct {
		name string
		rbac *rbacv3.RBAC
		req  *Request
		want Decision
	}{
		{"nil rbac allows", nil, httpReq("GET", "/"), Decision{Allowed: true}},
		{"allow with no policies denies", rbac(rbacv3.RBAC_ALLOW, nil), httpReq("GET", "/"), Decision{}},
		{"deny with no policies allows", rbac(rbacv3.RBAC_DENY, nil), httpReq("GET", "/"), Decision{Allowed: true}},
		{"allow match", allowProductpage, with(httpReq("GET", "/api/v1?x=1"), peer(bookinfo)),
			Decision{Allowed: true, Matched: true, Policy: "ns[default]-policy[allow-pp]-rule[0]"}},
		{"allow wrong method", allowProductpage, with(httpReq("POST", "/api/v1"), peer(bookinfo)), Decision{}},
		{"allow wrong path", allowProductpage, with(httpReq("GET", "/health"), peer(bookinfo)), Decision{}},
		{"allow no peer", allowProductpage, httpReq("GET", "/api/v1"), Decision{}},
		{"allow other peer", allowProductpage,
			with(httpReq("GET", "/api/v1"), peer("spiffe://cluster.local/ns/default/sa/evil")), Decision{}},
		{"deny matches exact path", denyAdmin, httpReq("GET", "/admin"), Decision{Matched: true, Policy: "deny-admin"}},
		{"deny ignores query", denyAdmin, httpReq("GET", "/admin?a=b"), Decision{Matched: true, Policy: "deny-admin"}},
		{"deny other path", denyAdmin, httpReq("GET", "/admin/x"), Decision{Allowed: true}},
		{"deny url_path never matches tcp", denyAdmin, &Request{Path: "/admin"}, Decision{Allowed: true}},
		{"log allows and marks", rbac(rbacv3.RBAC_LOG, map[string]*rbacv3.Policy{"audit": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "audit"}},
		{"first policy by name wins", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
			"b": pol([]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAny()}),
			"a": pol([]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAny()}),
		}), httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "a"}},
		{"policy without principals never matches", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
			"p": pol([]*rbacv3.Permission{permAny()}, nil)}), httpReq("GET", "/"), Decision{}},
		{"not path", rbac(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permNot(permPath(prefix("/public")))}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/public/x"), Decision{Allowed: true}},
		{"not id", rbac(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idNot(idAuthn(suffix("/sa/admin")))})}),
			with(httpReq("GET", "/"), peer("spiffe://cluster.local/ns/x/sa/admin")), Decision{Allowed: true}},
		{"authenticated any peer", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAuthn(nil)})}),
			with(httpReq("GET", "/"), peer("spiffe://x/ns/a/sa/b")), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"authenticated namespace regex", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAuthn(regex(`.*/ns/foo/.*`))})}),
			with(httpReq("GET", "/"), peer("spiffe://cluster.local/ns/foo/sa/x")), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"authenticated dns san", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAuthn(exact("svc.example.com"))})}),
			with(httpReq("GET", "/"), func(r *Request) { r.Peer = &Peer{DNS: []string{"svc.example.com"}} }),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"direct remote ip", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr("127.0.10.0", 24)}}})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"source ip outside", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_SourceIp{SourceIp: cidr("10.0.0.0", 8)}}})}),
			httpReq("GET", "/"), Decision{}},
		{"remote ip from xff", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("203.0.113.7", 32)}}})}),
			with(httpReq("GET", "/"), func(r *Request) { r.RemoteIP = netip.MustParseAddr("203.0.113.7") }),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"remote ip defaults to direct", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("127.0.10.1", 32)}}})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"destination port", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permPort(9080)}, []*rbacv3.Principal{idAny()})}),
			&Request{DestinationPort: 9080}, Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"destination port mismatch", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permPort(9090)}, []*rbacv3.Principal{idAny()})}),
			&Request{DestinationPort: 9080}, Decision{}},
		{"destination port range end exclusive", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: 9000, End: 9080}}}},
			[]*rbacv3.Principal{idAny()})}), &Request{DestinationPort: 9080}, Decision{}},
		{"destination ip", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidr("127.0.20.0", 24)}}},
			[]*rbacv3.Principal{idAny()})}), httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"sni", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: suffix(".example.com")}}},
			[]*rbacv3.Principal{idAny()})}), &Request{SNI: "www.example.com"}, Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"header prefix", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permHeader("x-tenant", prefix("acme"))}, []*rbacv3.Principal{idAny()})}),
			with(httpReq("GET", "/"), func(r *Request) { r.Headers.Set("X-Tenant", "acme-1") }),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"repeated header joined", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permHeader("x-a", exact("1,2"))}, []*rbacv3.Principal{idAny()})}),
			with(httpReq("GET", "/"), func(r *Request) { r.Headers["X-A"] = []string{"1", "2"} }),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"authority header", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permHeader(":authority", prefix("reviews"))}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"header ignore case", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permHeader(":authority", &matcherv3.StringMatcher{IgnoreCase: true,
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "REVIEWS:9080"}})}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"absent header inverted matches", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x-a", InvertMatch: true,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("1")}}}}}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/"), Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"present match", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "x-a",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}, []*rbacv3.Principal{idAny()})}),
			httpReq("GET", "/"), Decision{}},
		{"jwt issuer/subject", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idAnd(
				idMeta(jwtNS, []string{"payload", "iss"}, vString(exact("issuer-1"))),
				idMeta(jwtNS, []string{"payload", "sub"}, vString(exact("alice"))))})}),
			with(httpReq("GET", "/"), claims(t, map[string]any{"iss": "issuer-1", "sub": "alice"})),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"jwt missing metadata", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idMeta(jwtNS, []string{"payload", "iss"}, vString(exact("issuer-1")))})}),
			httpReq("GET", "/"), Decision{}},
		{"jwt list claim", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idMeta(jwtNS, []string{"payload", "groups"}, vList(vString(exact("admins"))))})}),
			with(httpReq("GET", "/"), claims(t, map[string]any{"groups": []any{"users", "admins"}})),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"jwt nested claim", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idMeta(jwtNS, []string{"payload", "realm", "role"}, vString(exact("ops")))})}),
			with(httpReq("GET", "/"), claims(t, map[string]any{"realm": map[string]any{"role": "ops"}})),
			Decision{Allowed: true, Matched: true, Policy: "p"}},
		{"jwt list matcher on string claim", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{idMeta(jwtNS, []string{"payload", "groups"}, vList(vString(exact("admins"))))})}),
			with(httpReq("GET", "/"), claims(t, map[string]any{"groups": "admins"})), Decision{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.rbac)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p.Evaluate(tc.req)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rbac *rbacv3.RBAC
		want string
	}{
		{"bad regex", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permPath(regex("("))}, []*rbacv3.Principal{idAny()})}), `rbac.policies["p"].permissions[0].url_path.path.safe_regex.regex`},
		{"bad cidr", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("nope", 8)}}})}), "remote_ip.address_prefix"},
		{"prefix too long", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("10.0.0.0", 33)}}})}), "prefix_len"},
		{"filter state unsupported", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAny()}, []*rbacv3.Principal{{Identifier: &rbacv3.Principal_FilterState{}}})}), "unsupported principal"},
		{"empty permission", rbac(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{{}}, []*rbacv3.Principal{idAny()})}), "no rule"},
		{"nested error path", rbac(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"p": pol(
			[]*rbacv3.Permission{permAnd(permOr(permPath(regex("["))))}, []*rbacv3.Principal{idAny()})}), "and_rules.rules[0].or_rules.rules[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.rbac)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	pols := map[string]*rbacv3.Policy{}
	for _, ns := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		pols["ns["+ns+"]"] = pol(
			[]*rbacv3.Permission{permAnd(permOr(permHeader(":method", exact("GET"))), permOr(permPath(prefix("/api/"+ns))))},
			[]*rbacv3.Principal{idAnd(idOr(idAuthn(prefix("spiffe://cluster.local/ns/" + ns + "/"))))})
	}
	p, err := Compile(rbac(rbacv3.RBAC_ALLOW, pols))
	if err != nil {
		b.Fatal(err)
	}
	r := with(httpReq("GET", "/api/h/items?x=1"), peer("spiffe://cluster.local/ns/h/sa/default"))
	b.ReportAllocs()
	for b.Loop() {
		if !p.Evaluate(r).Allowed {
			b.Fatal("denied")
		}
	}
}
