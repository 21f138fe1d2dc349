// Package gobench parses the output of `go test -bench -benchmem`: one Result
// per benchmark line with ns/op, B/op and allocs/op, so the harness can put
// allocations per request next to the end-to-end numbers.
package gobench
