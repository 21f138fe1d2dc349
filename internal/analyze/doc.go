// Package analyze says what is wrong with a mesh's configuration before
// traffic finds it, as istioctl analyze does (issue 3, point 8). It is pure:
// a validated config set and its registry in, findings out; `trellis
// analyze DIR` prints them and trellisd logs them whenever the config
// changes.
//
// Each finding has a code, a severity, the resource and field, and a
// one-line fix:
//
//	TRL0001 Error   a resource failed validation and is ignored
//	TRL0101 Error   a route names a subset no DestinationRule defines (silent 503s)
//	TRL0102 Error   a route's destination host is in no ServiceEntry
//	TRL0103 Error   two VirtualServices route the same host on the same gateway
//	TRL0104 Warning a rule can never match: an earlier one matches every request
//	TRL0105 Warning a Gateway server host that no VirtualService routes
//	TRL0106 Error   route weights that do not add up to 100
//	TRL0107 Warning a DestinationRule subset that selects none of the service's endpoints
//	TRL0201 Warning a workload that accepts traffic from no workload in the mesh (a lock-out)
//	TRL0202 Warning an AuthorizationPolicy that selects no workload
//
// The TRL02xx checks (Authorization) and Access share the proxy's
// authorization engine (issue 4, point 8): each destination's inbound
// listeners are translated as trellisd sends them (internal/translator) and
// their RBAC filters are run through internal/authz for every caller's
// SPIFFE identity with a GET /. They cost one translation per workload, so
// `trellis analyze` runs them and trellisd's config log does not.
//
// Host names resolve as Istio resolves them (a short name is in the
// resource's namespace); DestinationRules are matched by host across
// namespaces, ignoring exportTo, so the checks err on the side of silence.
package analyze
