// Package authz is Envoy's RBAC engine as a pure function: it compiles an
// envoy.config.rbac.v3.RBAC into immutable matchers once, and evaluates
// requests against them with no I/O, no locks and no allocation on the
// common path. The proxy's HTTP and network RBAC filters, `trellis analyze`
// and the translator's policy tests share it, so that what a policy means is
// decided in one place.
//
//	*rbacv3.RBAC ──1 Compile (validate; unsupported fields are errors)──▶ *Policy
//	                                                                        │
//	*Request (connection, peer certificate, headers, dynamic metadata)     │
//	  ──2 Evaluate: policies in name order, first whose permissions AND ◀──┘
//	     principals match wins
//	  ──3 action: ALLOW allows only on a match, DENY denies only on a
//	     match, LOG always allows (Matched tells whether to log)──▶ Decision
//
// Semantics follow Envoy's RBAC filter: a policy matches when any of its
// permissions and any of its principals match; a header matcher sees the
// values of a repeated header joined with ","; url_path compares the path
// without its query string; authenticated.principal_name compares the peer
// certificate's URI SANs, then its DNS SANs, then its subject. A Request
// without HTTP fields (a TCP connection) never matches header or url_path.
package authz
