package residency

import (
	"fmt"
	"os"
	"reflect"
	"syscall"
)

func releaseExecutable() (Result, error) {
	var r Result
	text, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return r, fmt.Errorf("residency: %w", err)
	}
	maps, err := ParseMaps(string(text))
	if err != nil {
		return r, fmt.Errorf("residency: /proc/self/maps: %w", err)
	}
	// The executable is the file whose mapping holds this function's code:
	// its device and inode as maps prints them (a container's overlay file
	// system reports others to stat).
	mine, err := executableMappings(maps, uint64(reflect.ValueOf(releaseExecutable).Pointer()))
	if err != nil {
		return r, fmt.Errorf("residency: /proc/self/maps: %w", err)
	}
	for _, m := range mine {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), syscall.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("residency: madvise %x-%x %s: %w", m.Start, m.End, m.Perms, errno)
		}
		r.Mappings++
		r.Bytes += int64(m.End - m.Start)
	}
	return r, nil
}
