package fortio

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "load.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{ActualQPS: 999.66, Duration: 2000676 * time.Microsecond, Count: 2000, OK: 1998,
		Latency: map[float64]time.Duration{50: 524 * time.Microsecond, 90: 921 * time.Microsecond,
			99: 1800 * time.Microsecond, 99.9: 2360 * time.Microsecond},
		Codes: map[string]int64{"200": 1998, "503": 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got.Errors() != 2 {
		t.Errorf("Errors = %d, want 2", got.Errors())
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       "{",
		"negative count": `{"DurationHistogram": {"Count": -1}}`,
		"absurd latency": `{"DurationHistogram": {"Count": 1, "Percentiles": [{"Percentile": 50, "Value": 1e9}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(in)); err == nil {
				t.Error("Parse succeeded, want error")
			}
		})
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		load Load
		want []string // must appear in order as a contiguous run
	}{
		{"http payload and host", Load{Target: "http://a/echo", QPS: 1000, Connections: 16, Duration: 2 * time.Second,
			PayloadSize: 1024, Host: "server"}, []string{"-H", "Host: server", "-payload-size", "1024", "http://a/echo"}},
		{"grpc streams", Load{Target: "a:8079", GRPC: true, Streams: 8, Duration: time.Second},
			[]string{"-grpc", "-ping", "-s", "8"}},
		{"max rate", Load{Target: "t", QPS: 0, Duration: time.Second}, []string{"-qps", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.load.Args("/x.json")
			i := slices.Index(args, tc.want[0])
			if i < 0 || i+len(tc.want) > len(args) || !slices.Equal(args[i:i+len(tc.want)], tc.want) {
				t.Errorf("Args = %q, want to contain %q", args, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "load.json")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"RetCodes": {"SERVING": 3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		for p, d := range r.Latency {
			if d < 0 {
				t.Errorf("p%v negative: %v", p, d)
			}
		}
	})
}
