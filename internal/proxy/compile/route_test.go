package compile

import (
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(c string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}}
}

func regexM(re string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: re} }

func hdr(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: action}
}

const (
	appendAction    = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	overwriteAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
)

func oneRoute(r *routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
		Name: "reviews", Domains: []string{"reviews", "reviews:9080", "*.example.com", "api.*"}, Routes: []*routev3.Route{r},
	}}}
}

func TestParseRouteConfiguration(t *testing.T) {
	fwd := func(c string) *runtime.ForwardAction {
		return &runtime.ForwardAction{Clusters: []runtime.WeightedCluster{{Name: c, Weight: 1}}}
	}
	prefix := runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true}
	tests := []struct {
		name string
		in   *routev3.Route
		want *runtime.Route
	}{
		{
			name: "prefix to cluster",
			in:   &routev3.Route{Name: "default", Match: prefixMatch("/"), Action: toCluster("c")},
			want: &runtime.Route{Name: "default", Match: prefix, Forward: fwd("c")},
		},
		{
			name: "exact path case insensitive",
			in: &routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Login"}, CaseSensitive: wrapperspb.Bool(false)},
				Action: toCluster("c"),
			},
			want: &runtime.Route{Match: runtime.RouteMatch{PathKind: runtime.PathExact, Path: "/Login"}, Forward: fwd("c")},
		},
		{
			name: "safe regex path",
			in: &routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexM(`/api/v[0-9]+/.*`)}},
				Action: toCluster("c"),
			},
			want: &runtime.Route{Match: runtime.RouteMatch{
				PathKind: runtime.PathRegex, Path: `/api/v[0-9]+/.*`, CaseSensitive: true,
				Regex: regexp.MustCompile(`^(?:/api/v[0-9]+/.*)$`),
			}, Forward: fwd("c")},
		},
		{
			name: "header and query matches",
			in: &routev3.Route{
				Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{
						{Name: "End-User", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}, IgnoreCase: true}}},
						{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "GE"}}}},
						{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".local"}}}},
						{Name: "x-re", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexM("a+")}, IgnoreCase: true}}},
						{Name: "x-present", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
						{Name: "x-absent", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}},
						{Name: "x-not", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "v"}},
						{Name: "x-legacy-prefix", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "p"}},
						{Name: "x-legacy-suffix", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "s"}},
						{Name: "x-legacy-re", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: regexM("b")}},
						{Name: "x-none"},
					},
					QueryParameters: []*routev3.QueryParameterMatcher{
						{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}}}},
						{Name: "trace", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
					},
				},
				Action: toCluster("c"),
			},
			want: &runtime.Route{Match: runtime.RouteMatch{
				PathKind: runtime.PathPrefix, Path: "/", CaseSensitive: true,
				Headers: []runtime.HeaderMatch{
					{Name: "end-user", Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "jason", IgnoreCase: true}},
					{Name: ":method", Match: runtime.StringMatch{Kind: runtime.MatchPrefix, Value: "GE"}},
					{Name: ":authority", Match: runtime.StringMatch{Kind: runtime.MatchSuffix, Value: ".local"}},
					{Name: "x-re", Match: runtime.StringMatch{Kind: runtime.MatchRegex, Value: "a+", Regex: regexp.MustCompile(`^(?:a+)$`)}},
					{Name: "x-present", Match: runtime.StringMatch{Kind: runtime.MatchPresent}},
					{Name: "x-absent", Match: runtime.StringMatch{Kind: runtime.MatchPresent}, Invert: true},
					{Name: "x-not", Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "v"}, Invert: true},
					{Name: "x-legacy-prefix", Match: runtime.StringMatch{Kind: runtime.MatchPrefix, Value: "p"}},
					{Name: "x-legacy-suffix", Match: runtime.StringMatch{Kind: runtime.MatchSuffix, Value: "s"}},
					{Name: "x-legacy-re", Match: runtime.StringMatch{Kind: runtime.MatchRegex, Value: "b", Regex: regexp.MustCompile(`^(?:b)$`)}},
					{Name: "x-none", Match: runtime.StringMatch{Kind: runtime.MatchPresent}},
				},
				Query: []runtime.QueryMatch{
					{Name: "debug", Match: runtime.StringMatch{Kind: runtime.MatchExact, Value: "1"}},
					{Name: "trace", Match: runtime.StringMatch{Kind: runtime.MatchPresent}},
				},
			}, Forward: fwd("c")},
		},
		{
			name: "weighted clusters, rewrites, timeout, retries, headers",
			in: &routev3.Route{
				Match: prefixMatch("/"),
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
						Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "v1", Weight: wrapperspb.UInt32(75), RequestHeadersToAdd: []*corev3.HeaderValueOption{hdr("x-v", "1", overwriteAction)}, ResponseHeadersToRemove: []string{"x-internal"}},
							{Name: "v2", Weight: wrapperspb.UInt32(25), ResponseHeadersToAdd: []*corev3.HeaderValueOption{hdr("x-v", "2", appendAction)}, RequestHeadersToRemove: []string{"x-drop"}},
						},
					}},
					Timeout:              durationpb.New(3 * time.Second),
					PrefixRewrite:        "/v2/",
					HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "reviews.internal"},
					RetryPolicy: &routev3.RetryPolicy{
						RetryOn: "5xx, connect-failure,retriable-status-codes", NumRetries: wrapperspb.UInt32(3),
						PerTryTimeout: durationpb.New(time.Second), RetriableStatusCodes: []uint32{503},
					},
				}},
				RequestHeadersToAdd: []*corev3.HeaderValueOption{
					hdr("x-set", "s", overwriteAction), hdr("x-add", "a", appendAction),
					{Header: &corev3.HeaderValue{Key: "x-legacy", RawValue: []byte("raw")}, Append: wrapperspb.Bool(false)},
				},
				RequestHeadersToRemove:  []string{"x-remove"},
				ResponseHeadersToAdd:    []*corev3.HeaderValueOption{hdr("x-resp", "r", appendAction)},
				ResponseHeadersToRemove: []string{"server"},
			},
			want: &runtime.Route{
				Match: prefix,
				Forward: &runtime.ForwardAction{
					Clusters: []runtime.WeightedCluster{
						{Name: "v1", Weight: 75, RequestHeaders: runtime.HeaderMutation{Set: []runtime.Header{{Name: "x-v", Value: "1"}}}, ResponseHeaders: runtime.HeaderMutation{Remove: []string{"x-internal"}}},
						{Name: "v2", Weight: 25, RequestHeaders: runtime.HeaderMutation{Remove: []string{"x-drop"}}, ResponseHeaders: runtime.HeaderMutation{Add: []runtime.Header{{Name: "x-v", Value: "2"}}}},
					},
					Timeout:       3 * time.Second,
					PrefixRewrite: "/v2/",
					HostRewrite:   "reviews.internal",
					Retry: &runtime.RetryPolicy{
						Attempts: 3, PerTryTimeout: time.Second,
						RetryOn: []string{"5xx", "connect-failure", "retriable-status-codes"}, StatusCodes: []uint32{503},
					},
				},
				RequestHeaders: runtime.HeaderMutation{
					Set:    []runtime.Header{{Name: "x-set", Value: "s"}, {Name: "x-legacy", Value: "raw"}},
					Add:    []runtime.Header{{Name: "x-add", Value: "a"}},
					Remove: []string{"x-remove"},
				},
				ResponseHeaders: runtime.HeaderMutation{Add: []runtime.Header{{Name: "x-resp", Value: "r"}}, Remove: []string{"server"}},
			},
		},
		{
			name: "retry policy defaults",
			in: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy:      &routev3.RetryPolicy{RetryOn: "5xx"},
			}}},
			want: &runtime.Route{Match: prefix, Forward: &runtime.ForwardAction{
				Clusters: []runtime.WeightedCluster{{Name: "c", Weight: 1}},
				Retry:    &runtime.RetryPolicy{Attempts: 1, RetryOn: []string{"5xx"}},
			}},
		},
		{
			name: "redirect",
			in: &routev3.Route{Match: prefixMatch("/old"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
				HostRedirect:           "new.example.com", PortRedirect: 8443,
				PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
				ResponseCode:         routev3.RedirectAction_PERMANENT_REDIRECT,
			}}},
			want: &runtime.Route{
				Match:    runtime.RouteMatch{PathKind: runtime.PathPrefix, Path: "/old", CaseSensitive: true},
				Redirect: &runtime.RedirectAction{Scheme: "https", Host: "new.example.com", Port: 8443, Path: "/new", StatusCode: 308},
			},
		},
		{
			name: "redirect defaults to 301",
			in: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"},
			}}},
			want: &runtime.Route{Match: prefix, Redirect: &runtime.RedirectAction{Scheme: "http", StatusCode: 301}},
		},
		{
			name: "direct response",
			in: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}},
			}}},
			want: &runtime.Route{Match: prefix, Direct: &runtime.DirectResponse{Status: 418, Body: []byte("teapot")}},
		},
		{
			name: "direct response bytes",
			in: &routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("ok")}},
			}}},
			want: &runtime.Route{Match: prefix, Direct: &runtime.DirectResponse{Status: 200, Body: []byte("ok")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := oneRoute(tc.in)
			if err := in.Validate(); err != nil {
				t.Fatalf("test input does not validate: %v", err)
			}
			got, err := ParseRouteConfiguration(in)
			if err != nil {
				t.Fatalf("ParseRouteConfiguration: %v", err)
			}
			want := &runtime.RouteTable{Name: "9080", VirtualHosts: []*runtime.VirtualHost{{
				Name: "reviews", Domains: []string{"reviews", "reviews:9080", "*.example.com", "api.*"}, Routes: []*runtime.Route{tc.want},
			}}}
			if diff := cmp.Diff(want, got, cmpRegexp); diff != "" {
				t.Errorf("ParseRouteConfiguration (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRouteConfigurationRejects(t *testing.T) {
	ok := func() *routev3.Route { return &routev3.Route{Match: prefixMatch("/"), Action: toCluster("c")} }
	tests := []struct {
		name string
		in   *routev3.RouteConfiguration
		want string
	}{
		{
			name: "bad safe regex",
			in: oneRoute(&routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexM("(")}},
				Action: toCluster("c"),
			}),
			want: "route \"9080\": virtual_hosts[0].routes[0].match.safe_regex: error parsing regexp: missing closing ): `^(?:()$`",
		},
		{
			name: "bad header regex",
			in: oneRoute(&routev3.Route{Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers:       []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexM("[")}}}}},
			}, Action: toCluster("c")}),
			want: "route \"9080\": virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex: error parsing regexp: missing closing ]: `[)$`",
		},
		{
			name: "contains match",
			in: oneRoute(&routev3.Route{Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers:       []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "a"}}}}},
			}, Action: toCluster("c")}),
			want: `route "9080": virtual_hosts[0].routes[0].match.headers[0].string_match: unsupported string match *matcherv3.StringMatcher_Contains`,
		},
		{
			name: "path separated prefix",
			in: oneRoute(&routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/a"}},
				Action: toCluster("c"),
			}),
			want: `route "9080": virtual_hosts[0].routes[0].match: unsupported path specifier *routev3.RouteMatch_PathSeparatedPrefix`,
		},
		{
			name: "runtime fraction",
			in: oneRoute(&routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, RuntimeFraction: &corev3.RuntimeFractionalPercent{}},
				Action: toCluster("c"),
			}),
			want: `route "9080": virtual_hosts[0].routes[0].match.runtime_fraction: unsupported`,
		},
		{
			name: "regex rewrite with prefix rewrite",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				PrefixRewrite:    "/x",
				RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regexM("a"), Substitution: "b"},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].route.regex_rewrite: set together with prefix_rewrite`,
		},
		{
			name: "regex rewrite, bad pattern",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regexM("("), Substitution: "b"},
			}}}),
			want: "route \"9080\": virtual_hosts[0].routes[0].route.regex_rewrite.pattern: error parsing regexp: missing closing ): `(`",
		},
		{
			name: "regex rewrite, group the pattern lacks",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regexM("/(a)"), Substitution: `/\2`},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].route.regex_rewrite.substitution: group \2: the pattern has 1`,
		},
		{
			name: "regex rewrite, unknown escape",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regexM("/a"), Substitution: `/\n`},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].route.regex_rewrite.substitution: invalid escape \n`,
		},
		{
			name: "cluster header",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].route: unsupported cluster specifier *routev3.RouteAction_ClusterHeader`,
		},
		{
			name: "mirror",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier:      &routev3.RouteAction_Cluster{Cluster: "c"},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{ClusterHeader: "x-mirror"}},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster_header: unsupported`,
		},
		{
			name: "add if absent",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: toCluster("c"),
				RequestHeadersToAdd: []*corev3.HeaderValueOption{hdr("x", "y", corev3.HeaderValueOption_ADD_IF_ABSENT)}}),
			want: `route "9080": virtual_hosts[0].routes[0].request_headers_to_add[0].append_action: unsupported ADD_IF_ABSENT`,
		},
		{
			name: "redirect strip query",
			in:   oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{StripQuery: true}}}),
			want: `route "9080": virtual_hosts[0].routes[0].redirect.strip_query: unsupported`,
		},
		{
			name: "direct response from file",
			in: oneRoute(&routev3.Route{Match: prefixMatch("/"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/passwd"}},
			}}}),
			want: `route "9080": virtual_hosts[0].routes[0].direct_response.body: unsupported data source *corev3.DataSource_Filename, want inline_string or inline_bytes`,
		},
		{
			name: "virtual host retry policy",
			in: &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
				Name: "v", Domains: []string{"*"}, RetryPolicy: &routev3.RetryPolicy{}, Routes: []*routev3.Route{ok()},
			}}},
			want: `route "9080": virtual_hosts[0].retry_policy: unsupported on the virtual host`,
		},
		{
			name: "virtual host headers",
			in: &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{{
				Name: "v", Domains: []string{"*"}, RequestHeadersToRemove: []string{"x"}, Routes: []*routev3.Route{ok()},
			}}},
			want: `route "9080": virtual_hosts[0].*_headers_to_*: unsupported on the virtual host, set them on routes`,
		},
		{
			name: "duplicate domain across virtual hosts",
			in: &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{
				{Name: "a", Domains: []string{"reviews"}, Routes: []*routev3.Route{ok()}},
				{Name: "b", Domains: []string{"ratings", "Reviews"}, Routes: []*routev3.Route{ok()}},
			}},
			want: `route "9080": virtual_hosts[1].domains[1]: duplicate domain "Reviews"`,
		},
		{
			name: "wildcard in the middle",
			in: &routev3.RouteConfiguration{Name: "9080", VirtualHosts: []*routev3.VirtualHost{
				{Name: "a", Domains: []string{"a.*.com"}, Routes: []*routev3.Route{ok()}},
			}},
			want: `route "9080": virtual_hosts[0].domains[0]: invalid domain "a.*.com": a wildcard is allowed only at the start or end`,
		},
		{
			name: "route level headers on route config",
			in:   &routev3.RouteConfiguration{Name: "9080", ResponseHeadersToRemove: []string{"x"}},
			want: `route "9080": *_headers_to_*: unsupported on the route configuration, set them on routes`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRouteConfiguration(tc.in)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParseRegexRewrite(t *testing.T) {
	tests := []struct {
		name, pattern, sub, path, want string
	}{
		{"groups swapped", `^/api/(\w+)/(\d+)$`, `/\2/\1`, "/api/users/42", "/42/users"},
		{"whole match", `^/.*$`, `/full`, "/a/b", "/full"},
		{"every match replaced", `o`, `0`, "/foo/boo", "/f00/b00"},
		{"dollar is literal", `^/a`, `/$1\\`, "/a/b", `/$1\/b`},
		{"group zero", `[0-9]+`, `<\0>`, "/v12", "/v<12>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr, err := parseRegexRewrite("regex_rewrite", &matcherv3.RegexMatchAndSubstitute{Pattern: regexM(tt.pattern), Substitution: tt.sub})
			if err != nil {
				t.Fatal(err)
			}
			if got := rr.Pattern.ReplaceAllString(tt.path, rr.Template); got != tt.want {
				t.Errorf("%q → %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func FuzzSubstitutionTemplate(f *testing.F) {
	for _, s := range []string{`/\1`, `\\`, `$x`, `\`, `\q`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sub string) {
		tmpl, err := substitutionTemplate(sub, 1)
		if err != nil {
			return
		}
		// A substitution without groups comes out verbatim.
		if !strings.ContainsRune(sub, '\\') && regexp.MustCompile(`x`).ReplaceAllString("x", tmpl) != sub {
			t.Errorf("%q expanded to something else", sub)
		}
	})
}

// TestParseRouteConfigurationSharesRetries checks that routes with equal
// retry policies share one parsed policy, and only those (issue 5).
func TestParseRouteConfigurationSharesRetries(t *testing.T) {
	route := func(on string) *routev3.Route {
		return &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy:      &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(2), RetriableStatusCodes: []uint32{503}},
			}},
		}
	}
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "a", Domains: []string{"a"}, Routes: []*routev3.Route{route("connect-failure,5xx")}},
		{Name: "b", Domains: []string{"b"}, Routes: []*routev3.Route{route("connect-failure,5xx"), route("5xx")}},
	}}
	rt, err := ParseRouteConfiguration(rc)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := rt.VirtualHosts[0].Routes[0].Forward.Retry, rt.VirtualHosts[1].Routes[0].Forward.Retry, rt.VirtualHosts[1].Routes[1].Forward.Retry
	if a != b {
		t.Error("equal retry policies of two routes are separate")
	}
	if a == c {
		t.Error("different retry policies are shared")
	}
	if diff := cmp.Diff(&runtime.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}, StatusCodes: []uint32{503}}, c); diff != "" {
		t.Errorf("third route's policy (-want +got):\n%s", diff)
	}
}
