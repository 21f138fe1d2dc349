package residency

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

const sampleMaps = `00400000-00a92000 r-xp 00000000 fd:01 1311 /usr/local/bin/trellis-proxy
00a92000-01352000 r--p 00692000 fd:01 1311 /usr/local/bin/trellis-proxy
01352000-013cf000 rw-p 00f52000 fd:01 1311 /usr/local/bin/trellis-proxy
013cf000-01400000 rw-p 00000000 00:00 0 
c000000000-c004000000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 r--p 00000000 00:2a 77 /tmp/a dir/with spaces (deleted)
7ffd5a1e0000-7ffd5a201000 rw-p 00000000 00:00 0                          [stack]
7ffd5a3f4000-7ffd5a3f6000 r-xp 00000000 00:00 0                          [vdso]
`

func TestParseMaps(t *testing.T) {
	maps, err := ParseMaps(sampleMaps)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 8 {
		t.Fatalf("got %d mappings, want 8", len(maps))
	}
	want := Mapping{Start: 0x400000, End: 0xa92000, Perms: "r-xp", Dev: "fd:01", Inode: 1311, Path: "/usr/local/bin/trellis-proxy"}
	if maps[0] != want {
		t.Errorf("first mapping %+v, want %+v", maps[0], want)
	}
	if maps[3].Path != "" || maps[3].Inode != 0 {
		t.Errorf("anonymous mapping %+v has a path or inode", maps[3])
	}
	if got := maps[5].Path; got != "/tmp/a dir/with spaces" {
		t.Errorf("path with spaces of a deleted file: %q", got)
	}
	if got := maps[6].Path; got != "[stack]" {
		t.Errorf("stack path %q", got)
	}
	if !maps[2].Writable() || maps[1].Writable() {
		t.Errorf("Writable: rw-p %v, r--p %v", maps[2].Writable(), maps[1].Writable())
	}
}

func TestParseMapsErrorsNameTheLine(t *testing.T) {
	for _, bad := range []string{
		"00400000 r-xp 00000000 fd:01 1311 /bin/x",     // no range
		"zz-00a92000 r-xp 00000000 fd:01 1311 /bin/x",  // start
		"00400000-zz r-xp 00000000 fd:01 1311 /bin/x",  // end
		"00a92000-00400000 r-xp 00000000 fd:01 1311 /", // end below start
		"00400000-00a92000 rx 00000000 fd:01 1311 /",   // perms
		"00400000-00a92000 r-xp 00000000 fd:01 x /",    // inode
		"00400000-00a92000 r-xp 00000000",              // short
	} {
		_, err := ParseMaps("00400000-00a92000 r-xp 00000000 fd:01 1311 /bin/x\n" + bad + "\n")
		if err == nil || !strings.Contains(err.Error(), "maps line 2") {
			t.Errorf("%q: error %v, want one naming line 2", bad, err)
		}
	}
}

func TestExecutableMappings(t *testing.T) {
	maps, err := ParseMaps(sampleMaps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := executableMappings(maps, 0x500000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Start != 0x400000 || got[1].Start != 0xa92000 {
		t.Errorf("got %+v, want the r-xp and r--p mappings of inode 1311 (never the rw-p one)", got)
	}
	if _, err := executableMappings(maps, 0xc000001000); err == nil {
		t.Error("a pc in an anonymous mapping: no error")
	}
	if _, err := executableMappings(maps, 0x10); err == nil {
		t.Error("a pc in no mapping: no error")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tx\nRssAnon:\t    7672 kB\nRssFile:\t   14904 kB\n"
	if n, err := parseStatusKB(status, "RssFile"); err != nil || n != 14904<<10 {
		t.Errorf("RssFile = %d, %v", n, err)
	}
	if _, err := parseStatusKB(status, "RssShmem"); err == nil {
		t.Error("missing line: no error")
	}
	if _, err := parseStatusKB("RssFile: many kB\n", "RssFile"); err == nil {
		t.Error("bad number: no error")
	}
}

// written lives in the binary's data segment: Release must not hand its
// page back, or the process would see the file's bytes again.
var written = [8]byte{'f', 'r', 'o', 'm', 'f', 'i', 'l', 'e'}

func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" {
		_, err := Release()
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Release on %s: %v, want ErrUnsupported", runtime.GOOS, err)
		}
		return
	}
	copy(written[:], "changed!")
	before, err := rssFile()
	if err != nil {
		t.Fatal(err)
	}
	r, err := releaseExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after, err := rssFile()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings < 1 || r.Bytes <= 0 {
		t.Errorf("released %d mappings, %d bytes", r.Mappings, r.Bytes)
	}
	if after >= before {
		t.Errorf("RssFile %d → %d bytes: the executable's pages stayed mapped", before, after)
	}
	if _, err := Release(); err != nil { // and once more with the heap returned
		t.Fatal(err)
	}
	if string(written[:]) != "changed!" {
		t.Errorf("data segment reverted to %q", written[:])
	}
	// The process runs on: code, rodata and pclntab fault back in.
	var buf [64 << 10]byte
	if n := runtime.Stack(buf[:], true); n == 0 {
		t.Error("no stacks after Release")
	}
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add(sampleMaps)
	f.Add("00400000-00a92000 r-xp 00000000 fd:01 1311 /bin/x (deleted)\n")
	f.Add("0-0 ---p 0 0:0 0\n")
	f.Fuzz(func(t *testing.T, text string) {
		maps, err := ParseMaps(text)
		if err != nil {
			return
		}
		for _, m := range maps {
			if m.End < m.Start || len(m.Perms) != 4 {
				t.Fatalf("accepted %+v from %q", m, text)
			}
			exe, err := executableMappings(maps, m.Start)
			if err != nil {
				continue
			}
			for _, e := range exe {
				if e.Inode == 0 || e.Writable() {
					t.Fatalf("%+v taken for the executable's read-only pages in %q", e, text)
				}
			}
		}
	})
}

// rssFile is the process's RssFile in bytes.
func rssFile() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return parseStatusKB(string(b), "RssFile")
}

// parseStatusKB returns the value of a "Name:  N kB" line of
// /proc/PID/status in bytes.
func parseStatusKB(status, name string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		v, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("status %s: %q is not a size in kB", name, v)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("status: no %s line", name)
}
