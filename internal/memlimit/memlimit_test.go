package memlimit

import (
	"runtime/debug"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512B", want: 512},
		{in: "24MiB", want: 24 << 20},
		{in: "2KiB", want: 2048},
		{in: "1GiB", want: 1 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "24MB", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "9223372036854775807KiB", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "24MiB", "1GiB", "12B", "x", "-3KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("Parse(%q) = %d, negative", s, v)
		}
		back, err := Parse(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %s -> %d, %v", s, v.String(), back, err)
		}
	})
}

// env is a getenv with only key set to v.
func env(key, v string) func(string) string {
	return func(k string) string {
		if k == key {
			return v
		}
		return ""
	}
}

func TestApply(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	if got, from := Apply(24<<20, env("GOMEMLIMIT", "")); got != 24<<20 || from != "flag" || debug.SetMemoryLimit(-1) != 24<<20 {
		t.Errorf("flag: limit %d from %s, runtime %d", got, from, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(64 << 20) // as the runtime would from GOMEMLIMIT=64MiB
	if got, from := Apply(24<<20, env("GOMEMLIMIT", "64MiB")); got != 64<<20 || from != "GOMEMLIMIT" {
		t.Errorf("environment: limit %d from %s, want 64MiB from GOMEMLIMIT", got, from)
	}
}

func TestApplyGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	if got, from := ApplyGCPercent(50, env("GOGC", "")); got != 50 || from != "flag" || debug.SetGCPercent(50) != 50 {
		t.Errorf("flag: %d from %s", got, from)
	}
	debug.SetGCPercent(200) // as the runtime would from GOGC=200
	if got, from := ApplyGCPercent(50, env("GOGC", "200")); got != 200 || from != "GOGC" || debug.SetGCPercent(200) != 200 {
		t.Errorf("environment: %d from %s, want 200 from GOGC", got, from)
	}
}
