package config

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	networkingv1 "istio.io/api/networking/v1"
)

// APIGroup is the API group of every kind Trellis reads.
const APIGroup = "networking.istio.io"

// apiVersions are the versions accepted for every kind; they share one schema.
var apiVersions = []string{APIGroup + "/v1", APIGroup + "/v1beta1", APIGroup + "/v1alpha3"}

// ParseKind returns the kind named as in YAML ("VirtualService"), or false.
func ParseKind(s string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// newSpec returns an empty spec message of the kind's official type.
func newSpec(k Kind) proto.Message {
	switch k {
	case KindServiceEntry:
		return &networkingv1.ServiceEntry{}
	case KindWorkloadEntry:
		return &networkingv1.WorkloadEntry{}
	case KindWorkloadGroup:
		return &networkingv1.WorkloadGroup{}
	case KindVirtualService:
		return &networkingv1.VirtualService{}
	case KindDestinationRule:
		return &networkingv1.DestinationRule{}
	case KindGateway:
		return &networkingv1.Gateway{}
	case KindSidecar:
		return &networkingv1.Sidecar{}
	}
	if spec := newSecuritySpec(k); spec != nil {
		return spec
	}
	return nil
}

// header holds the top-level nodes of one document.
type header struct {
	apiVersion, kind, metadata, spec *yaml.Node
	specLine                         int // line of the "spec:" key
}

// decodeDocument turns one YAML document into a validated resource. An empty
// document gives nothing. When there are errors the resource is nil and key
// is the document's identity when kind and name could be read.
func decodeDocument(file string, doc *yaml.Node) (r *Resource, key Key, errs []*Error) {
	if len(doc.Content) == 0 {
		return nil, Key{}, nil
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, Key{}, nil
	}
	docErr := func(line int, field, format string, args ...any) {
		errs = append(errs, &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if root.Kind != yaml.MappingNode {
		docErr(root.Line, "", "a document must be a mapping with apiVersion, kind, metadata and spec, got %s", describe(root))
		return nil, Key{}, errs
	}

	var h header
	seen := make(map[string]int)
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := resolve(root.Content[i]), resolve(root.Content[i+1])
		if kn == nil || kn.Kind != yaml.ScalarNode {
			docErr(root.Content[i].Line, "", "field names must be plain strings")
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			docErr(kn.Line, kn.Value, "field is set twice (first on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		switch kn.Value {
		case "apiVersion":
			h.apiVersion = vn
		case "kind":
			h.kind = vn
		case "metadata":
			h.metadata = vn
		case "spec":
			h.spec, h.specLine = vn, kn.Line
		case "status":
			// Written by controllers, ignored as Kubernetes ignores it on create.
		default:
			docErr(kn.Line, kn.Value, "unknown field %q (a document has apiVersion, kind, metadata and spec)", clip(kn.Value))
		}
	}

	if isGatewayAPIDocument(h) { // gatewayapi.go
		return decodeGatewayAPIDocument(file, root, h, errs)
	}
	kind, ok := decodeKind(h, root, docErr)
	if !ok {
		return nil, Key{}, errs
	}
	meta, metaOK := decodeMeta(h.metadata, root, docErr)
	if metaOK {
		key = Key{Kind: kind, Namespace: meta.Namespace, Name: meta.Name}
	}
	decodeAPIVersion(h.apiVersion, root, kind, docErr)

	spec, fieldErrs, lines := decodeSpec(kind, h.spec, cmp.Or(h.specLine, root.Line))
	for _, fe := range fieldErrs {
		line := fe.line
		if line == 0 {
			line = lineOf(lines, fe.path)
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
	return &Resource{Kind: kind, Meta: meta, Spec: spec, Origin: Origin{File: file, Line: root.Line}}, key, nil
}

type docErrFunc func(line int, field, format string, args ...any)

func decodeKind(h header, root *yaml.Node, docErr docErrFunc) (Kind, bool) {
	if isNull(h.kind) {
		docErr(root.Line, "kind", "is required")
		return 0, false
	}
	if h.kind.Kind != yaml.ScalarNode || h.kind.ShortTag() != "!!str" {
		docErr(h.kind.Line, "kind", "expected a string, got %s", describe(h.kind))
		return 0, false
	}
	kind, ok := ParseKind(h.kind.Value)
	if !ok {
		var names []string
		for _, k := range Kinds() {
			if !k.IsGatewayAPI() {
				names = append(names, k.String())
			}
		}
		docErr(h.kind.Line, "kind", "unknown kind %q (Trellis reads %s)", clip(h.kind.Value), strings.Join(names, ", "))
		return 0, false
	}
	return kind, true
}

func decodeAPIVersion(n, root *yaml.Node, kind Kind, docErr docErrFunc) {
	if isNull(n) {
		docErr(root.Line, "apiVersion", "is required (for example %s)", apiVersions[0])
		return
	}
	versions := apiVersions
	if sv := securityAPIVersions(kind); sv != nil {
		versions = sv
	}
	if n.Kind == yaml.ScalarNode {
		for _, v := range versions {
			if n.Value == v {
				return
			}
		}
	}
	docErr(n.Line, "apiVersion", "unsupported apiVersion %q for %s (want %s)", clip(n.Value), kind, strings.Join(versions, ", "))
}

func decodeMeta(n, root *yaml.Node, docErr docErrFunc) (Meta, bool) {
	var m Meta
	if isNull(n) {
		docErr(root.Line, "metadata.name", "is required")
		return m, false
	}
	if n.Kind != yaml.MappingNode {
		docErr(n.Line, "metadata", "expected a mapping, got %s", describe(n))
		return m, false
	}
	ok := true
	var nameNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn == nil || kn.Kind != yaml.ScalarNode || vn == nil {
			continue
		}
		field := "metadata." + kn.Value
		switch kn.Value {
		case "name", "namespace":
			if vn.Kind != yaml.ScalarNode || vn.ShortTag() != "!!str" {
				if !isNull(vn) {
					docErr(vn.Line, field, "expected a string, got %s", describe(vn))
					ok = false
				}
				continue
			}
			if kn.Value == "name" {
				m.Name, nameNode = vn.Value, vn
				if msg := checkDNSSubdomain(vn.Value); msg != "" {
					docErr(vn.Line, field, "%s", msg)
					ok = false
				}
			} else {
				m.Namespace = vn.Value
				if msg := checkDNSLabel(vn.Value); msg != "" {
					docErr(vn.Line, field, "%s", msg)
					ok = false
				}
			}
		case "labels", "annotations":
			mm, mapOK := stringMap(vn, field, docErr)
			ok = ok && mapOK
			if kn.Value == "labels" {
				m.Labels = mm
				for k, v := range mm {
					if msg := checkLabel(k, v); msg != "" {
						docErr(vn.Line, field+"["+k+"]", "%s", msg)
						ok = false
					}
				}
			} else {
				m.Annotations = mm
			}
		}
		// Other Kubernetes metadata (uid, resourceVersion, ...) is ignored.
	}
	if nameNode == nil || m.Name == "" {
		docErr(n.Line, "metadata.name", "is required")
		return m, false
	}
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	return m, ok
}

func stringMap(n *yaml.Node, field string, docErr docErrFunc) (map[string]string, bool) {
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		docErr(n.Line, field, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	out := make(map[string]string, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn == nil || vn == nil || kn.Kind != yaml.ScalarNode {
			docErr(n.Line, field, "keys must be plain strings")
			ok = false
			continue
		}
		if isNull(vn) {
			out[kn.Value] = ""
			continue
		}
		if vn.Kind != yaml.ScalarNode || vn.ShortTag() != "!!str" {
			docErr(vn.Line, field+"["+kn.Value+"]", "expected a string, got %s (quote it)", describe(vn))
			ok = false
			continue
		}
		out[kn.Value] = vn.Value
	}
	return out, ok
}

// decodeSpec checks the spec node against the kind's schema, decodes it with
// protojson, and runs the semantic checks. lines indexes field paths to
// lines for placing errors.
func decodeSpec(kind Kind, n *yaml.Node, specLine int) (proto.Message, []fieldError, map[string]int) {
	spec := newSpec(kind)
	w := newSchemaWalker()
	w.lines["spec"] = specLine
	v := w.message(n, spec.ProtoReflect().Descriptor(), "spec", 0)
	if len(w.errs) > 0 {
		sortFieldErrors(w.errs)
		return nil, w.errs, w.lines
	}
	if v != nil {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, []fieldError{{path: "spec", msg: fmt.Sprintf("cannot encode: %v", err)}}, w.lines
		}
		if err := protojson.Unmarshal(data, spec); err != nil {
			return nil, []fieldError{{path: "spec", msg: fmt.Sprintf("cannot decode: %v", err)}}, w.lines
		}
	}
	errs := validateSpec(kind, spec)
	for i := range errs {
		errs[i].line = lineOf(w.lines, errs[i].path)
	}
	sortFieldErrors(errs)
	return spec, errs, w.lines
}
