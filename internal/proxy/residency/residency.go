package residency

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// Mapping is one line of /proc/PID/maps that Release may unmap.
type Mapping struct {
	Start, End uint64 // [Start, End)
	Perms      string // "r-xp"
	Dev        string // "fd:01": major:minor in hex
	Inode      uint64
	Path       string // without a " (deleted)" suffix
}

// Writable reports whether the mapping may hold data the process wrote.
func (m Mapping) Writable() bool { return strings.Contains(m.Perms, "w") }

// Result says what Release did.
type Result struct {
	Mappings int   // read-only mappings of the executable unmapped
	Bytes    int64 // their total size (not all of it was resident)
}

// Release unmaps the executable's read-only mappings and returns freed
// heap to the kernel. It is meant to be called once, when start-up is over
// (for the proxy: a second after the first config serves with the workload
// certificate in hand). On platforms other than Linux it only returns freed
// heap, and errors.ErrUnsupported.
func Release() (Result, error) {
	r, err := releaseExecutable()
	debug.FreeOSMemory()
	return r, err
}

// ParseMaps parses the text of /proc/PID/maps. Lines without a path
// (anonymous mappings) are returned with an empty Path.
func ParseMaps(text string) ([]Mapping, error) {
	var out []Mapping
	for n, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", n+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMapsLine parses "START-END PERMS OFFSET DEV INODE [PATH]".
func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return m, fmt.Errorf("%q: want at least 5 fields", line)
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return m, fmt.Errorf("%q: address range %q has no '-'", line, fields[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("%q: start address: %w", line, err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("%q: end address: %w", line, err)
	}
	if m.End < m.Start {
		return m, fmt.Errorf("%q: end address below start", line)
	}
	if len(fields[1]) != 4 {
		return m, fmt.Errorf("%q: permissions %q: want 4 characters", line, fields[1])
	}
	m.Perms, m.Dev = fields[1], fields[3]
	if m.Inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return m, fmt.Errorf("%q: inode: %w", line, err)
	}
	if len(fields) > 5 {
		// The path is the rest of the line after the inode: it may hold
		// spaces. Find it after the fifth field.
		rest := line
		for range 5 {
			rest = strings.TrimLeft(rest, " \t")
			i := strings.IndexAny(rest, " \t")
			if i < 0 {
				rest = ""
				break
			}
			rest = rest[i:]
		}
		m.Path = strings.TrimSuffix(strings.TrimLeft(rest, " \t"), " (deleted)")
	}
	return m, nil
}

// executableMappings returns the read-only mappings of the file that
// holds the code at pc: same device and inode as the mapping containing pc.
func executableMappings(maps []Mapping, pc uint64) ([]Mapping, error) {
	var exe *Mapping
	for i := range maps {
		if maps[i].Start <= pc && pc < maps[i].End {
			exe = &maps[i]
			break
		}
	}
	if exe == nil || exe.Inode == 0 {
		return nil, fmt.Errorf("no file mapping holds the code at %#x", pc)
	}
	var out []Mapping
	for _, m := range maps {
		if m.Inode == exe.Inode && m.Dev == exe.Dev && !m.Writable() && m.End > m.Start {
			out = append(out, m)
		}
	}
	return out, nil
}
