package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// kubeWalker checks a YAML node tree against a Go type's JSON shape (the
// `json` struct tags of the Gateway API types) and converts it to a value
// encoding/json accepts. It is schemaWalker's counterpart for types that are
// not protobuf: unknown fields and wrong scalar types are errors with field
// paths and lines, and every visited path's line is recorded.
type kubeWalker struct {
	errs   []fieldError
	lines  map[string]int
	budget int
}

func (w *kubeWalker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, fieldError{path: path, msg: fmt.Sprintf(format, args...), line: n.Line})
}

func (w *kubeWalker) spend(n *yaml.Node, path string, depth int) bool {
	if w.budget <= 0 {
		return false
	}
	w.budget--
	if w.budget == 0 {
		w.fail(n, path, "document is too large or its aliases expand too far (more than %d nodes)", maxNodes)
		return false
	}
	if depth > maxDepth {
		w.fail(n, path, "nesting is deeper than %d levels", maxDepth)
		w.budget = 0
		return false
	}
	return true
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value converts n, which must fit t. It returns nil for null.
func (w *kubeWalker) value(n *yaml.Node, t reflect.Type, path string, depth int) any {
	n = resolve(n)
	if !w.spend(n, path, depth) || isNull(n) {
		return nil
	}
	if _, ok := w.lines[path]; !ok {
		w.lines[path] = n.Line
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return w.generic(n, path, depth) // the type checks itself when decoded
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.object(n, t, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, got %s", describe(n))
			return nil
		}
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			w.lines[ipath] = resolve(c).Line
			v := w.value(c, t.Elem(), ipath, depth+1)
			if v == nil {
				v = map[string]any{} // keep indexes aligned; null items are rejected by validation
			}
			out = append(out, v)
		}
		return out
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping, got %s", describe(n))
			return nil
		}
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := resolve(n.Content[i])
			if kn == nil || kn.Kind != yaml.ScalarNode {
				w.fail(n.Content[i], path, "map keys must be plain strings")
				continue
			}
			epath := path + "[" + kn.Value + "]"
			if _, dup := out[kn.Value]; dup {
				w.fail(kn, epath, "key is set twice")
				continue
			}
			w.lines[epath] = kn.Line
			out[kn.Value] = w.value(n.Content[i+1], t.Elem(), epath, depth+1)
		}
		return out
	case reflect.String:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!binary") {
			w.fail(n, path, "expected a string, got %s (quote it)", describe(n))
			return nil
		}
		return n.Value
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.fail(n, path, "expected true or false, got %s", describe(n))
			return nil
		}
		return n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			w.fail(n, path, "expected an integer, got %s", describe(n))
			return nil
		}
		i, err := strconv.ParseInt(n.Value, 0, t.Bits())
		if err != nil || (t.Kind() >= reflect.Uint && i < 0) {
			w.fail(n, path, "integer %s is out of range", clip(n.Value))
			return nil
		}
		return i
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			w.fail(n, path, "expected a number, got %s", describe(n))
			return nil
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			w.fail(n, path, "expected a number, got %s", describe(n))
			return nil
		}
		return f
	}
	w.fail(n, path, "unsupported field type %s", t)
	return nil
}

// object walks a mapping against a struct's JSON fields.
func (w *kubeWalker) object(n *yaml.Node, t reflect.Type, path string, depth int) any {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "expected a mapping, got %s", describe(n))
		return nil
	}
	fields := jsonFields(t)
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn := resolve(n.Content[i])
		if kn == nil || kn.Kind != yaml.ScalarNode {
			w.fail(n.Content[i], path, "field names must be plain strings")
			continue
		}
		fpath := join(path, kn.Value)
		ft, ok := fields[kn.Value]
		if !ok {
			w.fail(kn, fpath, "unknown field %q%s", clip(kn.Value), suggestName(fields, kn.Value))
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			w.fail(kn, fpath, "field is set twice (first on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		w.lines[fpath] = kn.Line
		if v := w.value(n.Content[i+1], ft, fpath, depth+1); v != nil {
			out[kn.Value] = v
		}
	}
	return out
}

// generic converts any YAML to JSON values, for types that decode
// themselves.
func (w *kubeWalker) generic(n *yaml.Node, path string, depth int) any {
	n = resolve(n)
	if !w.spend(n, path, depth) || isNull(n) {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if kn := resolve(n.Content[i]); kn != nil && kn.Kind == yaml.ScalarNode {
				out[kn.Value] = w.generic(n.Content[i+1], join(path, kn.Value), depth+1)
			}
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			out = append(out, w.generic(c, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return out
	}
	var v any
	if err := n.Decode(&v); err != nil {
		w.fail(n, path, "cannot decode %s", describe(n))
		return nil
	}
	return v
}

var jsonFieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields lists a struct's JSON field names (inline and embedded structs
// flattened) with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if v, ok := jsonFieldCache.Load(t); ok {
		return v.(map[string]reflect.Type)
	}
	out := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if (name == "" && f.Anonymous) || slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	jsonFieldCache.Store(t, out)
	return out
}

func suggestName(fields map[string]reflect.Type, name string) string {
	best, bestDist := "", 3
	for cand := range fields {
		if strings.EqualFold(cand, name) {
			return fmt.Sprintf(" (did you mean %q?)", cand)
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(cand)); d < bestDist || (d == bestDist && cand < best) {
			best, bestDist = cand, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}
