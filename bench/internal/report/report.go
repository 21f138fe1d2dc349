package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Machine describes where a run happened, so results can be compared.
type Machine struct {
	CPUModel  string    `json:"cpu_model"`
	Cores     int       `json:"cores"`
	Kernel    string    `json:"kernel"`
	GoVersion string    `json:"go_version"`
	Date      time.Time `json:"date"`
	Commit    string    `json:"commit"` // git commit of the tree measured; empty when unknown
	Dirty     bool      `json:"dirty"`  // the tree had uncommitted changes
}

// Report is one complete run. The zero value is an empty report.
type Report struct {
	Machine Machine `json:"machine"`
	// Quick is true for a BENCH_QUICK smoke run: short durations and small
	// sizes, not for comparison.
	Quick bool `json:"quick"`
	// LoadDuration is the length of each measured load run.
	LoadDuration time.Duration `json:"load_duration_ns"`
	Tables       []*Table      `json:"tables"`
	Checks       []Check       `json:"checks"`
	Notes        []string      `json:"notes,omitempty"`
}

// Column is one metric of a table. Digits is the number of decimals shown in
// Markdown (JSON keeps full precision).
type Column struct {
	Key    string `json:"key"`
	Header string `json:"header"`
	Digits int    `json:"-"`
}

// Row is one measured configuration. Values is keyed by Column.Key; a missing
// key means not measured. Skipped, when non-empty, says why the row has no
// values.
type Row struct {
	Label   string             `json:"label"`
	Values  map[string]float64 `json:"values,omitempty"`
	Skipped string             `json:"skipped,omitempty"`
}

// Table is one scenario's results.
type Table struct {
	Name    string   `json:"name"` // stable identifier, e.g. "latency"
	Title   string   `json:"title"`
	Columns []Column `json:"columns"`
	Rows    []Row    `json:"rows"`
	Notes   []string `json:"notes,omitempty"`
}

// NewTable adds an empty table to r and returns it.
func (r *Report) NewTable(name, title string, cols ...Column) *Table {
	t := &Table{Name: name, Title: title, Columns: cols}
	r.Tables = append(r.Tables, t)
	return t
}

// Table returns the table called name, or nil.
func (r *Report) Table(name string) *Table {
	for _, t := range r.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Value returns one measured value.
func (r *Report) Value(table, row, key string) (float64, bool) {
	t := r.Table(table)
	if t == nil {
		return 0, false
	}
	return t.Value(row, key)
}

// Add appends a row of values. NaN and infinite values are dropped: they mean
// "not measured" and JSON cannot carry them.
func (t *Table) Add(label string, values map[string]float64) {
	clean := make(map[string]float64, len(values))
	for k, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			clean[k] = v
		}
	}
	t.Rows = append(t.Rows, Row{Label: label, Values: clean})
}

// Skip appends a row that could not be measured and why.
func (t *Table) Skip(label, reason string) {
	if reason == "" {
		reason = "unknown reason"
	}
	t.Rows = append(t.Rows, Row{Label: label, Skipped: reason})
}

// Value returns the value of key in the row labelled label.
func (t *Table) Value(label, key string) (float64, bool) {
	for _, r := range t.Rows {
		if r.Label == label && r.Skipped == "" {
			v, ok := r.Values[key]
			return v, ok
		}
	}
	return 0, false
}

// Note adds a line printed under the table.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Note adds a line printed at the end of the report.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

// WriteMarkdown writes the report as a Markdown document: the machine, each
// table, then the checks.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Trellis benchmark\n\n")
	if r.Quick {
		b.WriteString("**Smoke run (BENCH_QUICK=1): short durations and small sizes; numbers are not comparable.**\n\n")
	}
	m := r.Machine
	commit := m.Commit
	if commit == "" {
		commit = "unknown"
	}
	if m.Dirty {
		commit += " (dirty)"
	}
	b.WriteString("| machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", m.Date.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "| commit | %s |\n", commit)
	fmt.Fprintf(&b, "| CPU | %s |\n", orDash(m.CPUModel))
	fmt.Fprintf(&b, "| cores | %d |\n", m.Cores)
	fmt.Fprintf(&b, "| kernel | %s |\n", orDash(m.Kernel))
	fmt.Fprintf(&b, "| Go | %s |\n", orDash(m.GoVersion))
	fmt.Fprintf(&b, "| load run | %s |\n\n", r.LoadDuration)
	for _, t := range r.Tables {
		writeTable(&b, t)
	}
	writeChecks(&b, r.Checks)
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report markdown: %w", err)
	}
	return nil
}

func writeTable(b *strings.Builder, t *Table) {
	fmt.Fprintf(b, "## %s\n\n", t.Title)
	b.WriteString("| |")
	for _, c := range t.Columns {
		fmt.Fprintf(b, " %s |", c.Header)
	}
	b.WriteString("\n|---|")
	for range t.Columns {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		fmt.Fprintf(b, "| %s |", row.Label)
		if row.Skipped != "" {
			fmt.Fprintf(b, " skipped: %s |", escape(row.Skipped))
			for range len(t.Columns) - 1 {
				b.WriteString(" |")
			}
			b.WriteString("\n")
			continue
		}
		for _, c := range t.Columns {
			v, ok := row.Values[c.Key]
			if !ok {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(b, " %s |", formatFloat(v, c.Digits))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, n := range t.Notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
	}
}

func writeChecks(b *strings.Builder, checks []Check) {
	if len(checks) == 0 {
		return
	}
	b.WriteString("## Targets\n\n| target | result | measured | limit | detail |\n|---|---|---:|---:|---|\n")
	for _, c := range checks {
		measured, limit := "–", "–"
		if c.Status != Skip {
			measured = formatFloat(c.Measured, 3) + c.Unit
		}
		if c.Limit != 0 || c.Status != Skip {
			limit = string(c.Op) + " " + formatFloat(c.Limit, 3) + c.Unit
		}
		fmt.Fprintf(b, "| %s | **%s** | %s | %s | %s |\n", c.Name, c.Status, measured, limit, escape(c.Detail))
	}
	b.WriteString("\n")
}

// Summary returns one line per check, "PASS name: detail", for a terminal.
func (r *Report) Summary() string {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s %s: %s\n", c.Status, c.Name, c.Detail)
	}
	return b.String()
}

// formatFloat prints v with digits decimals, trimming nothing so columns align.
func formatFloat(v float64, digits int) string {
	return fmt.Sprintf("%.*f", digits, v)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// escape keeps a free-text cell from breaking the Markdown table.
func escape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// Labels returns the row labels of t in order, for tests and callers that
// iterate.
func (t *Table) Labels() []string {
	out := make([]string, 0, len(t.Rows))
	for _, r := range t.Rows {
		out = append(out, r.Label)
	}
	return slices.Clip(out)
}
