package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT or --memory-limit says otherwise. Istio's agent derives
// GOMEMLIMIT from the container limit; a sidecar here has none, so the
// proxy sets one that keeps the heap near issue 5's RSS target at load.
// It is soft: a heap that needs more gets more, the GC just runs more often
// on the way (see README "Performance" for the RSS and CPU it trades).
const defaultMemoryLimit byteSize = 0

// byteSize is a flag value in GOMEMLIMIT's syntax: a non-negative integer
// with an optional unit B, KiB, MiB, GiB or TiB.
type byteSize int64

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseByteSize parses s as the Go runtime parses GOMEMLIMIT.
func parseByteSize(s string) (byteSize, error) {
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 63)
	if err != nil || num == "" || v > (1<<63-1)>>shift {
		return 0, fmt.Errorf("byte size %q: want an integer with an optional unit B, KiB, MiB, GiB or TiB", s)
	}
	return byteSize(v << shift), nil
}

func (b *byteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (b byteSize) String() string {
	for _, u := range byteUnits {
		if m := int64(1) << u.shift; b != 0 && int64(b)%m == 0 {
			return strconv.FormatInt(int64(b)/m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// applyMemoryLimit sets the runtime's soft memory limit to limit unless
// the environment has GOMEMLIMIT, which the runtime has already applied
// (as with GOGC, the environment wins, as Istio's agent expects). A limit
// of 0 leaves the runtime's default (none). It returns the limit in force
// and where it came from, for the start-up log.
func applyMemoryLimit(limit byteSize, getenv func(string) string) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	if limit <= 0 {
		return debug.SetMemoryLimit(-1), "none"
	}
	debug.SetMemoryLimit(int64(limit))
	return int64(limit), "--memory-limit"
}
