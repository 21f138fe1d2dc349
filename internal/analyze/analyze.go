package analyze

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
)

// Severity says how bad a finding is. Errors mean traffic will fail (503s,
// 404s); warnings mean config that does nothing or is likely a mistake.
type Severity uint8

const (
	Error Severity = iota + 1
	Warning
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "Error"
	case Warning:
		return "Warning"
	}
	return fmt.Sprintf("Severity(%d)", uint8(s))
}

// Code identifies a kind of finding, in the spirit of istioctl analyze's
// IST01xx codes (the Istio code with the same meaning is given where there
// is one).
type Code string

// The codes Trellis reports.
const (
	CodeInvalid          Code = "TRL0001" // a resource failed validation and is ignored
	CodeSubsetNoRule     Code = "TRL0101" // IST0101: subset with no DestinationRule defining it
	CodeUnknownHost      Code = "TRL0102" // IST0101: route destination host is in no ServiceEntry
	CodeConflictingVS    Code = "TRL0103" // IST0109: two VirtualServices for one host and gateway
	CodeUnreachableRule  Code = "TRL0104" // IST0130: an earlier rule catches every request
	CodeGatewayNoRoute   Code = "TRL0105" // a Gateway server host no VirtualService routes
	CodeWeightSum        Code = "TRL0106" // route weights do not add up to 100
	CodeSubsetNoWorkload Code = "TRL0107" // a DestinationRule subset selects no endpoint
)

// Finding is one problem, with where it is and a one-line fix.
type Finding struct {
	Code     Code
	Severity Severity
	Resource config.Key    // zero for problems not tied to one resource
	Origin   config.Origin // file and line of the resource, when known
	Field    string        // field path, spec.http[0].route[1].destination.subset; may be empty
	Message  string        // what is wrong
	Fix      string        // one line: what to do about it
}

// String formats as "Error [TRL0101] file:line: Kind ns/name: field: message (fix: ...)".
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] ", f.Severity, f.Code)
	if f.Origin.File != "" {
		b.WriteString(f.Origin.String())
		b.WriteString(": ")
	}
	if f.Resource.Name != "" {
		b.WriteString(f.Resource.String())
		b.WriteString(": ")
	}
	if f.Field != "" {
		b.WriteString(f.Field)
		b.WriteString(": ")
	}
	b.WriteString(f.Message)
	if f.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(f.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// Options tune Analyze. The zero value uses Trellis's defaults.
type Options struct {
	// DomainSuffix qualifies short host names: NAME in namespace NS is
	// NAME.NS.svc.DOMAIN_SUFFIX. Empty means "cluster.local".
	DomainSuffix string
}

// Analyze checks set (with reg, the registry built from it; nil builds one
// from set's ServiceEntries and WorkloadEntries) and returns every finding,
// errors first, then by file, line and field. It is pure and safe for
// concurrent use.
func Analyze(set *config.Set, reg *registry.Registry, opts Options) []Finding {
	if reg == nil {
		reg = registry.NewServiceEntrySource().Registry(set)
	}
	a := &analyzer{set: set, reg: reg, suffix: cmp.Or(opts.DomainSuffix, "cluster.local")}
	a.virtualServices()
	a.destinationRules()
	a.gateways()
	slices.SortStableFunc(a.out, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Severity, y.Severity), cmp.Compare(x.Origin.File, y.Origin.File),
			cmp.Compare(x.Origin.Line, y.Origin.Line), cmp.Compare(x.Resource.String(), y.Resource.String()),
			cmp.Compare(x.Field, y.Field), cmp.Compare(x.Code, y.Code))
	})
	return a.out
}

// FromErrors turns load and validation errors into CodeInvalid findings.
func FromErrors(errs []*config.Error) []Finding {
	var out []Finding
	for _, e := range errs {
		out = append(out, Finding{
			Code: CodeInvalid, Severity: Error,
			Origin:  config.Origin{File: e.File, Line: e.Line},
			Field:   e.Field,
			Message: strings.TrimSpace(e.Resource + " " + e.Msg),
			Fix:     "correct the field; trellisd ignores this resource (or keeps its last valid version) until then",
		})
	}
	return out
}

type analyzer struct {
	set    *config.Set
	reg    *registry.Registry
	suffix string
	out    []Finding
}

func (a *analyzer) add(r *config.Resource, code Code, sev Severity, field, fix, format string, args ...any) {
	a.out = append(a.out, Finding{
		Code: code, Severity: sev, Resource: r.Key(), Origin: r.Origin, Field: field,
		Message: fmt.Sprintf(format, args...), Fix: fix,
	})
}

// fqdn resolves a host as Istio does: a name without a dot is in namespace
// ns; wildcards and dotted names are used as written.
func (a *analyzer) fqdn(host, ns string) string {
	if host == "" || strings.HasPrefix(host, "*") || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + a.suffix
}

// services returns the registry services whose hostname host names: the
// same name, or covered by a wildcard on either side.
func (a *analyzer) services(host string) []*registry.Service {
	var out []*registry.Service
	for _, s := range a.reg.Services {
		if registry.HostMatches(s.Hostname, host) || registry.HostMatches(host, s.Hostname) {
			out = append(out, s)
		}
	}
	return out
}
