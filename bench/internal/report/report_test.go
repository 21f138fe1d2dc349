package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		measured float64
		op       Op
		limit    float64
		want     Status
		detail   string
	}{
		{"under an upper limit", 0.9, AtMost, 1.2, Pass, "0.9× < 1.2×: 25% under the limit"},
		{"over an upper limit", 1.5, AtMost, 1.2, Fail, "1.5× > 1.2×: 25% over the limit"},
		{"equal passes", 1.2, AtMost, 1.2, Pass, "1.2× = 1.2×: 0% under the limit"},
		{"above a lower limit", 0.9, AtLeast, 0.75, Pass, "0.9× > 0.75×: 20% over the limit"},
		{"below a lower limit", 0.5, AtLeast, 0.75, Fail, "0.5× < 0.75×: 33% under the limit"},
		{"NaN skips", math.NaN(), AtMost, 1, Skip, "measurement is not a finite number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Evaluate("x", tc.measured, tc.op, tc.limit, "×")
			if c.Status != tc.want || c.Detail != tc.detail {
				t.Errorf("Evaluate = %s %q; want %s %q", c.Status, c.Detail, tc.want, tc.detail)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		name         string
		num, den     float64
		okNum, okDen bool
		want         Status
	}{
		{"pass", 110, 100, true, true, Pass},
		{"fail", 130, 100, true, true, Fail},
		{"missing numerator", 0, 100, false, true, Skip},
		{"non-positive reference", 10, -3, true, true, Skip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Ratio("r", tc.num, tc.den, tc.okNum, tc.okDen, AtMost, 1.2).Status; got != tc.want {
				t.Errorf("Ratio = %s, want %s", got, tc.want)
			}
		})
	}
}

// sample is a small report exercising every rendering path.
func sample() *Report {
	r := &Report{Quick: true, LoadDuration: 2 * time.Second, Machine: Machine{CPUModel: "Test CPU", Cores: 2,
		Kernel: "6.1.0", GoVersion: "go1.26.8", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Commit: "abc123", Dirty: true}}
	tbl := r.NewTable("latency", "Latency", Column{Key: "p50", Header: "p50 µs"}, Column{Key: "cpu", Header: "vCPU", Digits: 3})
	tbl.Add("no mesh", map[string]float64{"p50": 120.4, "cpu": math.NaN()})
	tbl.Add("trellis", map[string]float64{"p50": 250, "cpu": 0.0456})
	tbl.Skip("nginx", "nginx not installed | run setup")
	tbl.Note("a note")
	r.Checks = []Check{Evaluate("cpu", 0.0456, AtMost, 0.1, ""), Skipped("ratio", AtMost, 1.2, "×", "an input was not measured")}
	r.Note("smoke")
	return r
}

func TestWriteMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("markdown (-want +got):\n%s", diff)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if v, ok := back.Value("latency", "trellis", "cpu"); !ok || v != 0.0456 {
		t.Errorf("Value after round trip = %v, %v; want 0.0456, true", v, ok)
	}
	if _, ok := back.Value("latency", "no mesh", "cpu"); ok {
		t.Error("NaN value survived; want it dropped")
	}
	if _, ok := back.Value("latency", "nginx", "p50"); ok {
		t.Error("skipped row has a value")
	}
	if diff := cmp.Diff(r.Checks, back.Checks); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
}
