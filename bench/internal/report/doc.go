// Package report holds the results of one benchmark run and renders them as
// Markdown and JSON, so that runs on different machines and commits can be
// compared side by side.
//
// A Report is a list of Tables (one per scenario: latency, saturation, ...),
// each a list of Rows of named numeric Values, plus Checks: the targets
// evaluated as ratios measured in the same run (PASS, FAIL, or SKIP when an
// input is missing), each saying by how much it passed or failed.
//
// Everything here is pure: no processes, no files other than what the caller
// passes as an io.Writer.
package report
