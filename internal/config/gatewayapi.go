package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayAPIGroup is the API group of the Kubernetes Gateway API kinds.
const GatewayAPIGroup = "gateway.networking.k8s.io"

// GatewayAPIObject is one decoded Kubernetes Gateway API resource
// (sigs.k8s.io/gateway-api v1 types). Exactly one field is set, the one the
// Resource's Kind names. Its ObjectMeta carries name, namespace (defaulted as
// for Istio kinds), labels, annotations and creationTimestamp when written;
// Status is never read. Callers must not modify it.
type GatewayAPIObject struct {
	GatewayClass   *gwv1.GatewayClass
	Gateway        *gwv1.Gateway
	HTTPRoute      *gwv1.HTTPRoute
	GRPCRoute      *gwv1.GRPCRoute
	ReferenceGrant *gwv1.ReferenceGrant

	lines map[string]int // field path → line, for errors found after ingest
}

// Line returns the line of a field path of the object ("spec.rules[0]"), or
// of its nearest written ancestor; 0 when unknown.
func (o *GatewayAPIObject) Line(path string) int {
	if o == nil {
		return 0
	}
	return lineOf(o.lines, path)
}

// IsGatewayAPI reports whether k is a gateway.networking.k8s.io kind, whose
// resources carry GatewayAPI instead of Spec.
func (k Kind) IsGatewayAPI() bool {
	switch k {
	case KindGatewayClass, KindKubernetesGateway, KindHTTPRoute, KindGRPCRoute, KindReferenceGrant:
		return true
	}
	return false
}

// gatewayAPIKinds maps the YAML kind to the Kind, with the apiVersions each
// accepts. v1beta1 shares the v1 schema for the kinds that have it.
var gatewayAPIKinds = map[string]struct {
	kind     Kind
	versions []string
}{
	"GatewayClass":   {KindGatewayClass, []string{"v1", "v1beta1"}},
	"Gateway":        {KindKubernetesGateway, []string{"v1", "v1beta1"}},
	"HTTPRoute":      {KindHTTPRoute, []string{"v1", "v1beta1"}},
	"GRPCRoute":      {KindGRPCRoute, []string{"v1"}},
	"ReferenceGrant": {KindReferenceGrant, []string{"v1", "v1beta1"}},
}

// isGatewayAPIDocument reports whether a document belongs to the Gateway
// API: by its apiVersion group, or by a kind only the Gateway API has.
func isGatewayAPIDocument(h header) bool {
	if h.apiVersion != nil && h.apiVersion.Kind == yaml.ScalarNode &&
		strings.HasPrefix(h.apiVersion.Value, GatewayAPIGroup+"/") {
		return true
	}
	if h.kind != nil && h.kind.Kind == yaml.ScalarNode && h.kind.Value != "Gateway" {
		_, ok := gatewayAPIKinds[h.kind.Value]
		return ok
	}
	return false
}

// decodeGatewayAPIDocument is decodeDocument for the Gateway API kinds:
// the spec is walked against the Go types' JSON schema (unknown fields and
// wrong types are errors with lines), decoded with encoding/json
// (DisallowUnknownFields), then checked by validate_gatewayapi.go.
func decodeGatewayAPIDocument(file string, root *yaml.Node, h header, errs []*Error) (*Resource, Key, []*Error) {
	docErr := func(line int, field, format string, args ...any) {
		errs = append(errs, &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	var kind Kind
	var versions []string
	switch {
	case isNull(h.kind):
		docErr(root.Line, "kind", "is required")
		return nil, Key{}, errs
	case h.kind.Kind != yaml.ScalarNode:
		docErr(h.kind.Line, "kind", "expected a string, got %s", describe(h.kind))
		return nil, Key{}, errs
	default:
		k, ok := gatewayAPIKinds[h.kind.Value]
		if !ok {
			docErr(h.kind.Line, "kind", "unknown kind %q in %s (Trellis reads GatewayClass, Gateway, HTTPRoute, GRPCRoute and ReferenceGrant)", clip(h.kind.Value), GatewayAPIGroup)
			return nil, Key{}, errs
		}
		kind, versions = k.kind, k.versions
	}
	meta, metaOK := decodeMeta(h.metadata, root, docErr)
	var key Key
	if metaOK {
		key = Key{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
	}
	if n := h.apiVersion; isNull(n) {
		docErr(root.Line, "apiVersion", "is required (for example %s/v1)", GatewayAPIGroup)
	} else {
		var want []string
		for _, v := range versions {
			want = append(want, GatewayAPIGroup+"/"+v)
		}
		if n.Kind != yaml.ScalarNode || !slices.Contains(want, n.Value) {
			docErr(n.Line, "apiVersion", "unsupported apiVersion %q for %s (want %s)", clip(n.Value), h.kind.Value, strings.Join(want, ", "))
		}
	}
	created, createdOK := creationTimestamp(h.metadata, docErr)
	metaOK = metaOK && createdOK

	obj, target := newGatewayAPIObject(kind)
	w := &kubeWalker{lines: map[string]int{"spec": h.specLine}, budget: maxNodes}
	if isNull(h.spec) {
		w.errs = append(w.errs, fieldError{path: "spec", msg: "is required", line: root.Line})
	} else {
		v := w.value(h.spec, target.Elem().Type(), "spec", 0)
		if len(w.errs) == 0 {
			if err := decodeJSONStrict(v, target.Interface()); err != nil {
				w.errs = append(w.errs, fieldError{path: "spec", msg: fmt.Sprintf("cannot decode: %v", err)})
			}
		}
	}
	fieldErrs := w.errs
	if len(fieldErrs) == 0 {
		fieldErrs = validateGatewayAPI(kind, obj)
	}
	for _, fe := range fieldErrs {
		line := fe.line
		if line == 0 {
			line = lineOf(w.lines, fe.path)
		}
		if line == 0 {
			line = root.Line
		}
		errs = append(errs, &Error{File: file, Line: line, Field: fe.path, Msg: fe.msg})
	}
	if metaOK {
		for _, e := range errs {
			e.Resource = key.String()
		}
	}
	if len(errs) > 0 || !metaOK {
		return nil, key, errs
	}
	om := metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: meta.Labels,
		Annotations: meta.Annotations, CreationTimestamp: created}
	obj.setMeta(kind, om)
	obj.lines = w.lines
	return &Resource{Kind: kind, Meta: meta, Origin: Origin{File: file, Line: root.Line}, GatewayAPI: obj}, key, nil
}

// newGatewayAPIObject returns an object with the kind's field set and a
// pointer to its spec for decoding.
func newGatewayAPIObject(kind Kind) (*GatewayAPIObject, reflect.Value) {
	o := &GatewayAPIObject{}
	var spec any
	switch kind {
	case KindGatewayClass:
		o.GatewayClass = &gwv1.GatewayClass{}
		spec = &o.GatewayClass.Spec
	case KindKubernetesGateway:
		o.Gateway = &gwv1.Gateway{}
		spec = &o.Gateway.Spec
	case KindHTTPRoute:
		o.HTTPRoute = &gwv1.HTTPRoute{}
		spec = &o.HTTPRoute.Spec
	case KindGRPCRoute:
		o.GRPCRoute = &gwv1.GRPCRoute{}
		spec = &o.GRPCRoute.Spec
	case KindReferenceGrant:
		o.ReferenceGrant = &gwv1.ReferenceGrant{}
		spec = &o.ReferenceGrant.Spec
	}
	return o, reflect.ValueOf(spec)
}

func (o *GatewayAPIObject) setMeta(kind Kind, om metav1.ObjectMeta) {
	tm := metav1.TypeMeta{APIVersion: GatewayAPIGroup + "/v1", Kind: strings.TrimSuffix(kind.String(), "."+GatewayAPIGroup)}
	switch {
	case o.GatewayClass != nil:
		o.GatewayClass.TypeMeta, o.GatewayClass.ObjectMeta = tm, om
	case o.Gateway != nil:
		o.Gateway.TypeMeta, o.Gateway.ObjectMeta = tm, om
	case o.HTTPRoute != nil:
		o.HTTPRoute.TypeMeta, o.HTTPRoute.ObjectMeta = tm, om
	case o.GRPCRoute != nil:
		o.GRPCRoute.TypeMeta, o.GRPCRoute.ObjectMeta = tm, om
	case o.ReferenceGrant != nil:
		o.ReferenceGrant.TypeMeta, o.ReferenceGrant.ObjectMeta = tm, om
	}
}

// creationTimestamp reads metadata.creationTimestamp (RFC 3339), which the
// Gateway API uses to order routes of equal precedence.
func creationTimestamp(md *yaml.Node, docErr docErrFunc) (metav1.Time, bool) {
	if md == nil || md.Kind != yaml.MappingNode {
		return metav1.Time{}, true
	}
	for i := 0; i+1 < len(md.Content); i += 2 {
		kn, vn := resolve(md.Content[i]), resolve(md.Content[i+1])
		if kn == nil || vn == nil || kn.Value != "creationTimestamp" || isNull(vn) {
			continue
		}
		t, err := time.Parse(time.RFC3339, vn.Value)
		if vn.Kind != yaml.ScalarNode || err != nil {
			docErr(vn.Line, "metadata.creationTimestamp", "expected an RFC 3339 time such as 2024-01-02T15:04:05Z, got %s", describe(vn))
			return metav1.Time{}, false
		}
		return metav1.NewTime(t), true
	}
	return metav1.Time{}, true
}

// gatewayDurationRE is GEP-2257's duration format, for example 1h30m or 500ms.
var gatewayDurationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// ParseGatewayDuration parses a Gateway API duration (GEP-2257: one to four
// groups of up to five digits with a unit h, m, s or ms, such as 1h30m or
// 500ms; "0s" is zero).
func ParseGatewayDuration(s string) (time.Duration, error) {
	if !gatewayDurationRE.MatchString(s) {
		return 0, fmt.Errorf("%q is not a Gateway API duration (for example 10s, 500ms or 1h30m)", clip(s))
	}
	return time.ParseDuration(s)
}

func decodeJSONStrict(v any, into any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}
