package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in the input. Fields that are not known are
// empty (or 0 for Line).
type Error struct {
	File     string // file the document came from
	Line     int    // 1-based line of the offending node; 0 when unknown
	Resource string // "VirtualService default/reviews"; empty when the document has no identity yet
	Field    string // field path, "spec.http[0].route[1].weight"; empty for whole-document problems
	Msg      string // plain words: what is wrong and, where useful, what is expected
}

// Error formats as "file:line: Kind ns/name: field: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Resource != "" {
		b.WriteString(e.Resource)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
