package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile document from costing unbounded time or stack.
// YAML aliases can make a small document expand exponentially ("billion
// laughs"); every node visited, including through an alias, costs budget.
const (
	maxNodes = 200_000
	maxDepth = 64
)

// fieldError is a problem at a field path, before the file, line and resource
// are attached.
type fieldError struct {
	path string
	msg  string
	line int // 0: look the path up in the line index
}

// schemaWalker checks a YAML node tree against a protobuf message descriptor
// and converts it to the JSON that protojson accepts. It records the line of
// every path it visits so that later (semantic) errors can be placed.
type schemaWalker struct {
	errs   []fieldError
	lines  map[string]int
	budget int
}

func newSchemaWalker() *schemaWalker {
	return &schemaWalker{lines: make(map[string]int), budget: maxNodes}
}

func (w *schemaWalker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, fieldError{path: path, msg: fmt.Sprintf(format, args...), line: n.Line})
}

// spend charges one node; it reports false once the budget is gone (after
// recording the error once).
func (w *schemaWalker) spend(n *yaml.Node, path string, depth int) bool {
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

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's YAML type in plain words.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", clip(n.Value))
		case "!!int", "!!float":
			return "the number " + clip(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "nothing"
		}
		return fmt.Sprintf("%q", clip(n.Value))
	}
	return "an unsupported YAML node"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// message walks a mapping against md. It returns the JSON value, or nil when
// the node is null.
func (w *schemaWalker) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string, depth int) any {
	n = resolve(n)
	if !w.spend(n, path, depth) || isNull(n) {
		return nil
	}
	if _, ok := w.lines[path]; !ok { // the key's line, when the parent recorded it
		w.lines[path] = n.Line
	}
	if wk, ok := w.wellKnown(n, md, path, depth); ok {
		return wk
	}
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "expected a mapping (%s), got %s", md.Name(), describe(n))
		return nil
	}
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[protoreflect.FullName]int)                 // field → line of first occurrence
	oneofs := make(map[protoreflect.FullName]protoreflect.Name) // oneof → field that set it
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), n.Content[i+1]
		if kn == nil || kn.Kind != yaml.ScalarNode {
			w.fail(n.Content[i], path, "field names must be plain strings")
			continue
		}
		fd := lookupField(md, kn.Value)
		fpath := join(path, kn.Value)
		if fd == nil {
			w.fail(kn, fpath, "unknown field %q%s", kn.Value, suggest(md, kn.Value))
			continue
		}
		fpath = join(path, fd.JSONName())
		if first, dup := seen[fd.FullName()]; dup {
			w.fail(kn, fpath, "field is set twice (first on line %d)", first)
			continue
		}
		seen[fd.FullName()] = kn.Line
		w.lines[fpath] = kn.Line
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !isNull(resolve(vn)) {
			if other, ok := oneofs[od.FullName()]; ok {
				w.fail(kn, fpath, "only one of %s may be set, and %s is already set", oneofNames(od), jsonName(md, other))
				continue
			}
			oneofs[od.FullName()] = fd.Name()
		}
		if v := w.field(vn, fd, fpath, depth+1); v != nil {
			out[fd.JSONName()] = v
		}
	}
	return out
}

func lookupField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(name))
}

func jsonName(md protoreflect.MessageDescriptor, name protoreflect.Name) string {
	if fd := md.Fields().ByName(name); fd != nil {
		return fd.JSONName()
	}
	return string(name)
}

func oneofNames(od protoreflect.OneofDescriptor) string {
	var names []string
	for i := 0; i < od.Fields().Len(); i++ {
		names = append(names, od.Fields().Get(i).JSONName())
	}
	return strings.Join(names, ", ")
}

// suggest offers the closest known field name for a misspelt one.
func suggest(md protoreflect.MessageDescriptor, name string) string {
	best, bestDist := "", 3
	for i := 0; i < md.Fields().Len(); i++ {
		cand := md.Fields().Get(i).JSONName()
		if strings.EqualFold(cand, name) || strings.EqualFold(strings.ReplaceAll(name, "_", ""), cand) {
			return fmt.Sprintf(" (did you mean %q?)", cand)
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(cand)); d < bestDist {
			best, bestDist = cand, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// field converts the value of one field: a list, a map or a single value.
func (w *schemaWalker) field(vn *yaml.Node, fd protoreflect.FieldDescriptor, path string, depth int) any {
	vn = resolve(vn)
	if !w.spend(vn, path, depth) || isNull(vn) {
		return nil
	}
	switch {
	case fd.IsMap():
		if vn.Kind != yaml.MappingNode {
			w.fail(vn, path, "expected a mapping, got %s", describe(vn))
			return nil
		}
		out := make(map[string]any, len(vn.Content)/2)
		firstLine := make(map[string]int)
		for i := 0; i+1 < len(vn.Content); i += 2 {
			kn := resolve(vn.Content[i])
			if kn == nil || kn.Kind != yaml.ScalarNode {
				w.fail(vn.Content[i], path, "map keys must be plain strings")
				continue
			}
			epath := path + "[" + kn.Value + "]"
			if first, dup := firstLine[kn.Value]; dup {
				w.fail(kn, epath, "key is set twice (first on line %d)", first)
				continue
			}
			firstLine[kn.Value] = kn.Line
			w.lines[epath] = kn.Line
			key, ok := w.mapKey(kn, fd.MapKey(), epath)
			if !ok {
				continue
			}
			ev := resolve(vn.Content[i+1])
			if isNull(ev) {
				if fd.MapValue().Kind() == protoreflect.StringKind {
					out[key] = ""
					continue
				}
				w.fail(kn, epath, "value must not be empty")
				continue
			}
			if v := w.single(ev, fd.MapValue(), epath, depth+1); v != nil {
				out[key] = v
			}
		}
		return out
	case fd.IsList():
		if vn.Kind != yaml.SequenceNode {
			w.fail(vn, path, "expected a list, got %s", describe(vn))
			return nil
		}
		out := make([]any, 0, len(vn.Content))
		for i, en := range vn.Content {
			epath := fmt.Sprintf("%s[%d]", path, i)
			en = resolve(en)
			if en == nil {
				continue
			}
			w.lines[epath] = en.Line
			if isNull(en) {
				w.fail(en, epath, "list item must not be empty")
				continue
			}
			if v := w.single(en, fd, epath, depth+1); v != nil {
				out = append(out, v)
			}
		}
		return out
	}
	return w.single(vn, fd, path, depth)
}

func (w *schemaWalker) mapKey(kn *yaml.Node, fd protoreflect.FieldDescriptor, path string) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return kn.Value, true
	case protoreflect.BoolKind:
		if b, err := strconv.ParseBool(kn.Value); err == nil {
			return strconv.FormatBool(b), true
		}
	default:
		if _, err := strconv.ParseInt(kn.Value, 10, 64); err == nil {
			return kn.Value, true
		}
	}
	w.fail(kn, path, "key %q is not a valid %s", clip(kn.Value), fd.Kind())
	return "", false
}

// single converts one non-list, non-map value (a list element or map value
// included).
func (w *schemaWalker) single(n *yaml.Node, fd protoreflect.FieldDescriptor, path string, depth int) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.message(n, fd.Message(), path, depth)
	case protoreflect.EnumKind:
		return w.enum(n, fd.Enum(), path)
	}
	return w.scalar(n, fd.Kind(), path)
}

func (w *schemaWalker) enum(n *yaml.Node, ed protoreflect.EnumDescriptor, path string) any {
	if ed.FullName() == "google.protobuf.NullValue" {
		return nil
	}
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	want := strings.Join(names, ", ")
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "expected one of %s, got %s", want, describe(n))
		return nil
	}
	if n.ShortTag() == "!!int" {
		v, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(v)) == nil {
			w.fail(n, path, "%s is not a known value (want one of %s)", clip(n.Value), want)
			return nil
		}
		return string(ed.Values().ByNumber(protoreflect.EnumNumber(v)).Name())
	}
	if ed.Values().ByName(protoreflect.Name(n.Value)) == nil {
		w.fail(n, path, "%q is not a known value (want one of %s)", clip(n.Value), want)
		return nil
	}
	return n.Value
}

// scalar converts a YAML scalar to the JSON form protojson expects for kind.
func (w *schemaWalker) scalar(n *yaml.Node, kind protoreflect.Kind, path string) any {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "expected %s, got %s", kindWords(kind), describe(n))
		return nil
	}
	tag := n.ShortTag()
	switch kind {
	case protoreflect.StringKind:
		if tag != "!!str" {
			w.fail(n, path, "expected a string, got %s (quote it: \"%s\")", describe(n), clip(n.Value))
			return nil
		}
		return n.Value
	case protoreflect.BytesKind:
		if tag != "!!str" && tag != "!!binary" {
			w.fail(n, path, "expected base64 bytes, got %s", describe(n))
			return nil
		}
		if _, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), "")); err != nil {
			w.fail(n, path, "expected base64 bytes: %v", err)
			return nil
		}
		return strings.Join(strings.Fields(n.Value), "")
	case protoreflect.BoolKind:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			w.fail(n, path, "expected true or false, got %s", describe(n))
			return nil
		}
		return b
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if tag != "!!float" && tag != "!!int" {
			w.fail(n, path, "expected a number, got %s", describe(n))
			return nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			w.fail(n, path, "expected a number, got %s", describe(n))
			return nil
		}
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		if kind == protoreflect.FloatKind && math.Abs(f) > math.MaxFloat32 {
			w.fail(n, path, "%s is too large", clip(n.Value))
			return nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	}
	// Integers.
	if tag != "!!int" {
		w.fail(n, path, "expected %s, got %s", kindWords(kind), describe(n))
		return nil
	}
	lo, hi, unsigned := intRange(kind)
	if unsigned {
		var u uint64
		if err := n.Decode(&u); err != nil {
			var s int64
			if n.Decode(&s) == nil && s < 0 {
				w.fail(n, path, "must not be negative, got %s", n.Value)
			} else {
				w.fail(n, path, "%s is out of range", clip(n.Value))
			}
			return nil
		}
		if u > uint64(hi) {
			w.fail(n, path, "%s is out of range (at most %d)", clip(n.Value), uint64(hi))
			return nil
		}
		return json.Number(strconv.FormatUint(u, 10))
	}
	var s int64
	if err := n.Decode(&s); err != nil || s < lo || s > int64(hi) {
		w.fail(n, path, "%s is out of range (%d to %d)", clip(n.Value), lo, int64(hi))
		return nil
	}
	return json.Number(strconv.FormatInt(s, 10))
}

func intRange(kind protoreflect.Kind) (lo int64, hi uint64, unsigned bool) {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return math.MinInt32, math.MaxInt32, false
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return 0, math.MaxUint32, true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return 0, math.MaxUint64, true
	}
	return math.MinInt64, math.MaxInt64, false
}

func kindWords(kind protoreflect.Kind) string {
	switch kind {
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.BytesKind:
		return "base64 bytes"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative whole number"
	}
	return "a whole number"
}

var wrapperKinds = map[protoreflect.FullName]protoreflect.Kind{
	"google.protobuf.DoubleValue": protoreflect.DoubleKind,
	"google.protobuf.FloatValue":  protoreflect.FloatKind,
	"google.protobuf.Int64Value":  protoreflect.Int64Kind,
	"google.protobuf.UInt64Value": protoreflect.Uint64Kind,
	"google.protobuf.Int32Value":  protoreflect.Int32Kind,
	"google.protobuf.UInt32Value": protoreflect.Uint32Kind,
	"google.protobuf.BoolValue":   protoreflect.BoolKind,
	"google.protobuf.StringValue": protoreflect.StringKind,
	"google.protobuf.BytesValue":  protoreflect.BytesKind,
}

// wellKnown handles the google.protobuf types whose JSON form is not an
// object of their fields. ok is false for ordinary messages.
func (w *schemaWalker) wellKnown(n *yaml.Node, md protoreflect.MessageDescriptor, path string, depth int) (v any, ok bool) {
	name := md.FullName()
	if k, isWrapper := wrapperKinds[name]; isWrapper {
		return w.scalar(n, k, path), true
	}
	switch name {
	case "google.protobuf.Duration":
		return w.duration(n, path), true
	case "google.protobuf.Timestamp", "google.protobuf.FieldMask":
		return w.scalar(n, protoreflect.StringKind, path), true
	case "google.protobuf.Struct":
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping, got %s", describe(n))
			return nil, true
		}
		return w.anyValue(n, path, depth), true
	case "google.protobuf.ListValue":
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, got %s", describe(n))
			return nil, true
		}
		return w.anyValue(n, path, depth), true
	case "google.protobuf.Value":
		return w.anyValue(n, path, depth), true
	case "google.protobuf.Any":
		w.fail(n, path, "google.protobuf.Any is not supported")
		return nil, true
	}
	return nil, false
}

// duration accepts Go duration syntax ("5s", "1m30s", "100ms") and returns
// protojson's seconds form. A negative duration passes here; the semantic
// checks say where it is not allowed.
func (w *schemaWalker) duration(n *yaml.Node, path string) any {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		w.fail(n, path, "expected a duration such as \"5s\" or \"100ms\", got %s", describe(n))
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		w.fail(n, path, "expected a duration such as \"5s\" or \"100ms\", got %q", clip(n.Value))
		return nil
	}
	return protoDuration(d)
}

// protoDuration formats d exactly as protojson's "1.5s" form.
func protoDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
	}
	secs := uint64(d.Abs() / time.Second)
	nanos := uint64(d.Abs() % time.Second)
	if d == math.MinInt64 { // Abs saturates; the value is still far beyond any sane setting
		secs, nanos = 9223372036, 854775808
	}
	if nanos == 0 {
		return fmt.Sprintf("%s%ds", sign, secs)
	}
	frac := strings.TrimRight(fmt.Sprintf("%09d", nanos), "0")
	return fmt.Sprintf("%s%d.%ss", sign, secs, frac)
}

// anyValue converts arbitrary YAML (google.protobuf.Value) to JSON.
func (w *schemaWalker) anyValue(n *yaml.Node, path string, depth int) any {
	n = resolve(n)
	if !w.spend(n, path, depth) || n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := resolve(n.Content[i])
			if kn == nil || kn.Kind != yaml.ScalarNode {
				w.fail(n.Content[i], path, "map keys must be plain strings")
				continue
			}
			out[kn.Value] = w.anyValue(n.Content[i+1], path+"["+kn.Value+"]", depth+1)
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, en := range n.Content {
			out = append(out, w.anyValue(en, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return out
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b
			}
		case "!!int", "!!float":
			var f float64
			if n.Decode(&f) == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
			w.fail(n, path, "%s is not a finite number", clip(n.Value))
			return nil
		}
		return n.Value
	}
	return nil
}

// lineOf finds the line of path in the index, falling back to the nearest
// ancestor that was written in the document.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// sortFieldErrors orders errors by line, then path, for stable output.
func sortFieldErrors(errs []fieldError) {
	slices.SortStableFunc(errs, func(a, b fieldError) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return strings.Compare(a.path, b.path)
	})
}
