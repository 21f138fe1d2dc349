package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultNamespace is the namespace of a document whose metadata names none.
const DefaultNamespace = "default"

// MaxFileSize is the largest file Parse accepts.
const MaxFileSize = 8 << 20

// File is what one file contributed: its valid resources, the identities of
// documents that failed, and every error.
type File struct {
	Name      string      // the path as read; used in errors and origins
	Resources []*Resource // valid resources in document order
	Failed    []Key       // identities of documents with errors, when they could be read
	Errors    []*Error    // every problem, in line order

	// Unreadable is true when the file could not be read or is not valid
	// YAML; then nothing in it was decoded (Resources and Failed are empty)
	// and a caller that had an earlier version may keep that in force.
	Unreadable bool
}

// Parse decodes every YAML document in data (a file's contents; file is used
// only in errors). It returns the resources that are valid on their own and
// one *Error per problem. A document with errors yields no resource, but the
// identity of such a document, when it can be read, is reported in
// Failed so a caller can keep the last good version in force.
//
// Parse never panics. ParseFile gives the same result with the extra
// Unreadable flag.
func Parse(file string, data []byte) (resources []*Resource, failed []Key, errs []*Error) {
	f := ParseFile(file, data)
	return f.Resources, f.Failed, f.Errors
}

// ParseFile is Parse returning a *File. Duplicates within the file are not
// reported here; Merge does that across files.
func ParseFile(file string, data []byte) (f *File) {
	defer func() {
		// yaml.v3 has had panics on hostile input; a panic must never take
		// the control plane down with it. FuzzParse calls parseFile so that
		// it still sees them.
		if r := recover(); r != nil {
			f = &File{Name: file, Unreadable: true,
				Errors: []*Error{{File: file, Msg: fmt.Sprintf("cannot decode file: internal error: %v", r)}}}
		}
	}()
	return parseFile(file, data)
}

func parseFile(file string, data []byte) *File {
	f := &File{Name: file}
	if len(data) > MaxFileSize {
		f.Unreadable = true
		f.Errors = []*Error{{File: file, Msg: fmt.Sprintf("file is %d bytes, larger than the %d byte limit", len(data), MaxFileSize)}}
		return f
	}
	docs, err := splitDocuments(data)
	if err != nil {
		f.Unreadable = true
		line, msg := yamlErrorLine(err)
		f.Errors = []*Error{{File: file, Line: line, Msg: "invalid YAML: " + msg}}
		return f
	}
	for _, doc := range docs {
		r, key, errs := decodeDocument(file, doc)
		switch {
		case len(errs) > 0:
			f.Errors = append(f.Errors, errs...)
			if key != (Key{}) {
				f.Failed = append(f.Failed, key)
			}
		case r != nil:
			f.Resources = append(f.Resources, r)
		}
	}
	return f
}

func splitDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlErrorLine pulls the line out of a yaml.v3 syntax error.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return n, m[2]
		}
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// ReadDir parses every *.yaml and *.yml file directly in dir (no
// subdirectories, no hidden files) in lexical order. It fails only when dir
// itself cannot be listed; a file that cannot be read is a File with
// Unreadable set.
func ReadDir(dir string) ([]*File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read config dir: %w", err)
	}
	var files []*File
	for _, e := range entries {
		if !IsConfigFile(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if info, statErr := os.Stat(path); statErr == nil && info.IsDir() { // a symlink to a directory
			continue
		}
		data, readErr := os.ReadFile(path)
		if readErr != nil {
			files = append(files, &File{Name: path, Unreadable: true,
				Errors: []*Error{{File: path, Msg: fmt.Sprintf("cannot read file: %v", readErr)}}})
			continue
		}
		files = append(files, ParseFile(path, data))
	}
	return files, nil
}

// IsConfigFile reports whether a directory entry's base name is one the
// loader reads: *.yaml or *.yml, not hidden.
func IsConfigFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// Merge combines files, in the order given, into one Set. It returns every
// file's errors plus one error per duplicate resource (same kind, namespace
// and name): the first occurrence wins and the duplicate is reported at its
// own file and line. Errors are ordered by file, then line.
func Merge(files []*File) (*Set, []*Error) {
	var (
		all   []*Resource
		errs  []*Error
		first = make(map[Key]*Resource)
		order = make(map[string]int) // file → position, for sorting
	)
	for i, f := range files {
		if _, ok := order[f.Name]; !ok {
			order[f.Name] = i
		}
		errs = append(errs, f.Errors...)
		for _, r := range f.Resources {
			k := r.Key()
			if prev, dup := first[k]; dup {
				errs = append(errs, &Error{File: r.Origin.File, Line: r.Origin.Line, Resource: k.String(),
					Msg: "duplicate resource: already defined at " + prev.Origin.String()})
				continue
			}
			first[k] = r
			all = append(all, r)
		}
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(a.Line, b.Line))
	})
	return NewSet(all), errs
}

// LoadDir reads every *.yaml and *.yml file directly in dir (not
// subdirectories; hidden files ignored), in lexical order, and returns the
// valid resources as a Set together with every error, including duplicate
// resources across or within files (the first occurrence in file order wins
// and the duplicate is reported at its own file and line) and cross-resource
// checks. trellis validate and the directory source share it.
func LoadDir(dir string) (*Set, []*Error) {
	files, err := ReadDir(dir)
	if err != nil {
		return NewSet(nil), []*Error{{File: dir, Msg: err.Error()}}
	}
	return Merge(files)
}
