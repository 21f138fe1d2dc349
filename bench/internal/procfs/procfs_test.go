package procfs

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{"plain", "1234 (haproxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200",
			Stat{PID: 1234, PPID: 1, CPU: 3 * time.Second}, false},
		{"command with spaces and parens", "77 (a (b) c) R 5 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0",
			Stat{PID: 77, PPID: 5, CPU: 100 * time.Millisecond}, false},
		{"truncated", "77 (x) R 5 77", Stat{}, true},
		{"no parens", "77 x R 5", Stat{}, true},
		{"bad utime", "1 (x) S 0 1 1 0 -1 0 0 0 0 0 zz 3 0", Stat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"present", "Name:\tx\nVmPeak:\t 2000 kB\nVmRSS:\t    1536 kB\nThreads: 3\n", 1536 * 1024, false},
		{"zombie has none", "Name:\tx\nState:\tZ (zombie)\n", 0, true},
		{"wrong unit", "VmRSS: 12 MB\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRSS([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseRSS = %d, %v; want %d, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseCPUModel(t *testing.T) {
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := ParseCPUModel([]byte(in)); got != "AMD EPYC 7B13" {
		t.Errorf("ParseCPUModel = %q", got)
	}
}

// TestReadSelf reads this test process: the only /proc access in the tests.
func TestReadSelf(t *testing.T) {
	u, err := TreeUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 {
		t.Errorf("RSS = %d, want > 0", u.RSS)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (haproxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0"))
	f.Add([]byte("1 ((() R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err == nil && st.CPU < 0 {
			t.Errorf("negative CPU %v", st.CPU)
		}
	})
}

func FuzzParseRSS(f *testing.F) {
	f.Add([]byte("VmRSS:\t 1536 kB\n"))
	f.Add([]byte("VmRSS: -1 kB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := ParseRSS(data); err == nil && n < 0 {
			t.Errorf("negative RSS %d", n)
		}
	})
}
