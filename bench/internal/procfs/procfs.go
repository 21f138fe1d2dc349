package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes USER_HZ for
// userspace ABI regardless of CONFIG_HZ); reading it needs sysconf, which
// needs cgo.
const ClockTicks = 100

// Stat is the part of /proc/PID/stat the harness uses.
type Stat struct {
	PID  int
	PPID int
	CPU  time.Duration // utime + stime
}

// ParseStat parses the contents of /proc/PID/stat. The command name (field 2)
// is in parentheses and may itself contain spaces and parentheses, so fields
// are counted from the last ')'.
func ParseStat(data []byte) (Stat, error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 1 || end < open {
		return Stat{}, errors.New("parse stat: no command name in parentheses")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat: pid: %w", err)
	}
	// After ")": field 3 (state) is rest[0]; ppid is field 4, utime 14, stime 15.
	rest := strings.Fields(string(data[end+1:]))
	if len(rest) < 13 {
		return Stat{}, fmt.Errorf("parse stat: %d fields after the command name, want at least 13", len(rest))
	}
	ppid, err := strconv.Atoi(rest[1])
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat: ppid: %w", err)
	}
	utime, err := strconv.ParseUint(rest[11], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(rest[12], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat: stime: %w", err)
	}
	ticks := utime + stime
	return Stat{PID: pid, PPID: ppid, CPU: time.Duration(ticks) * (time.Second / ClockTicks)}, nil
}

// ParseRSS returns VmRSS in bytes from the contents of /proc/PID/status. A
// process that has exited (a zombie) has no VmRSS line: that is an error.
func ParseRSS(data []byte) (int64, error) {
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse status: VmRSS %q: want \"N kB\"", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("parse status: VmRSS %q: not a size", f[0])
		}
		return kb * 1024, nil
	}
	return 0, errors.New("parse status: no VmRSS line")
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, fmt.Errorf("read stat: %w", err)
	}
	return ParseStat(data)
}

// ReadRSS reads VmRSS of pid in bytes.
func ReadRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	return ParseRSS(data)
}

// Tree returns pid and all its descendants (pid first).
func Tree(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("process tree: %w", err)
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// Usage is the CPU time and resident memory of a set of processes.
type Usage struct {
	CPU time.Duration
	RSS int64 // bytes
}

// TreeUsage sums CPU and RSS over pid and its descendants. CPU of children that
// have already exited is not counted (workers of the proxies measured here
// live as long as their parent).
func TreeUsage(pid int) (Usage, error) {
	pids, err := Tree(pid)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for i, p := range pids {
		st, err := ReadStat(p)
		if err != nil {
			if i == 0 {
				return Usage{}, err
			}
			continue
		}
		rss, err := ReadRSS(p)
		if err != nil {
			if i == 0 {
				return Usage{}, err
			}
			continue
		}
		u.CPU += st.CPU
		u.RSS += rss
	}
	return u, nil
}

// Machine is a description of the host.
type Machine struct {
	CPUModel string
	Cores    int
	Kernel   string
}

// ParseCPUModel returns the first "model name" of /proc/cpuinfo.
func ParseCPUModel(cpuinfo []byte) string {
	for line := range strings.Lines(string(cpuinfo)) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ReadMachine describes the host; parts it cannot read are left empty.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = ParseCPUModel(data)
	}
	if data, err := os.ReadFile(filepath.Join("/proc/sys/kernel", "osrelease")); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}
