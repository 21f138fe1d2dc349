package memlimit

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// Size is a byte count in GOMEMLIMIT's syntax: a non-negative integer with
// an optional unit B, KiB, MiB, GiB or TiB. It is a flag.Value; the zero
// value is 0 bytes.
type Size int64

var units = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// Parse parses s as the Go runtime parses GOMEMLIMIT (without "off").
func Parse(s string) (Size, error) {
	num, shift := s, uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 63)
	if err != nil || num == "" || v > (1<<63-1)>>shift {
		return 0, fmt.Errorf("memlimit: parse %q: want an integer with an optional unit B, KiB, MiB, GiB or TiB", s)
	}
	return Size(v << shift), nil
}

// Set implements flag.Value.
func (b *Size) Set(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String is b in the largest unit that divides it exactly.
func (b Size) String() string {
	for _, u := range units {
		if m := int64(1) << u.shift; b != 0 && int64(b)%m == 0 {
			return strconv.FormatInt(int64(b)/m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Apply sets the runtime's soft memory limit to limit unless getenv has
// GOMEMLIMIT, which the runtime has already applied. A limit of 0 leaves
// the runtime's default (none). It returns the limit in force and where it
// came from ("GOMEMLIMIT", "flag" or "none"), for the start-up log.
func Apply(limit Size, getenv func(string) string) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	if limit <= 0 {
		return debug.SetMemoryLimit(-1), "none"
	}
	debug.SetMemoryLimit(int64(limit))
	return int64(limit), "flag"
}

// ApplyGCPercent sets the runtime's GC percentage to percent unless getenv
// has GOGC, which the runtime has already applied. A negative percent turns
// the proportional GC off, as GOGC=off does (the memory limit then alone
// triggers collections). It returns the percentage in force (negative:
// off) and where it came from ("GOGC" or "flag").
func ApplyGCPercent(percent int, getenv func(string) string) (int, string) {
	if getenv("GOGC") != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur, "GOGC"
	}
	debug.SetGCPercent(percent)
	return percent, "flag"
}
