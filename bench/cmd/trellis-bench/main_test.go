package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellis-mesh/trellis/bench/internal/report"
)

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"median", d, 0.5, 50 * time.Millisecond},
		{"p99", d, 0.99, 99 * time.Millisecond},
		{"single", d[:1], 0.99, time.Millisecond},
		{"empty", nil, 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.in, tc.q); got != tc.want {
				t.Errorf("quantile = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestChecks feeds a synthetic report through the targets.
func TestChecks(t *testing.T) {
	rep := &report.Report{}
	lat := rep.NewTable("latency", "", latencyCols...)
	lat.Add("trellis c=16", map[string]float64{"added_p99": 110, "cpu_sidecar": 0.05})
	lat.Add("haproxy c=16", map[string]float64{"added_p99": 100, "cpu_sidecar": 0.03})
	sat := rep.NewTable("saturation", "")
	sat.Add("trellis GOMAXPROCS=1", map[string]float64{"qps": 8000})
	sat.Add("haproxy nbthread 1", map[string]float64{"qps": 10000})
	cp := rep.NewTable("controlplane", "", cpCols...)
	cp.Add(cpLabel(false, false, "endpoint"), map[string]float64{"p99_ms": 400, "missing": 0, "kb_per_proxy": 500, "mb_per_proxy": 0.2})
	cp.Add(cpLabel(true, false, "endpoint"), map[string]float64{"p99_ms": 300, "missing": 2, "kb_per_proxy": 1, "changed_kb": 0.6, "mb_per_proxy": 0.7})
	// Twice what changed, or more, is not "only what changed".
	wasteful := &report.Report{}
	wcp := wasteful.NewTable("controlplane", "", cpCols...)
	wcp.Add(cpLabel(true, false, "endpoint"), map[string]float64{"kb_per_proxy": 1.3, "changed_kb": 0.6})
	for _, c := range checks(wasteful) {
		if strings.HasPrefix(c.Name, "delta sends only what changed") && c.Status != report.Fail {
			t.Errorf("%s = %q with 1.3 KB sent for 0.6 KB changed, want %s", c.Name, c.Status, report.Fail)
		}
	}
	got := map[string]report.Status{}
	for _, c := range checks(rep) {
		got[c.Name] = c.Status
	}
	for name, want := range map[string]report.Status{
		"added p99 at 1000 rps, c=16: Trellis / HAProxy":                             report.Pass,
		"added p99 at 1000 rps, c=4: Trellis / HAProxy":                              report.Skip,
		"sidecar CPU at 1000 rps (vCPU per 1000 rps)":                                report.Pass,
		"sidecar CPU: Trellis / HAProxy":                                             report.Fail,
		"one-core saturation: Trellis / HAProxy":                                     report.Pass,
		"sidecar memory per cluster (KB)":                                            report.Skip,
		"sotw, no scoping, endpoint change: p99 time to ACK with 1000 proxies (ms)":  report.Pass,
		"delta, no scoping, endpoint change: p99 time to ACK with 1000 proxies (ms)": report.Fail,
		"trellisd memory per connected proxy (MB, worst setup)":                      report.Fail,
		"delta sends only what changed: delta bytes per proxy per endpoint change / encoded size of the changed ClusterLoadAssignment": report.Pass,
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %s", name, got[name], want)
		}
	}
}

func TestParseMemStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    memStat
		wantErr bool
	}{
		{"split", "Name:\ttrellis-proxy\nVmRSS:\t   27184 kB\nRssAnon:\t   12000 kB\nRssFile:\t   15100 kB\nRssShmem:\t      84 kB\n",
			memStat{RSS: 27184 << 10, Anon: 12000 << 10, File: 15100 << 10}, false},
		{"old kernel, no split", "VmRSS:\t100 kB\n", memStat{RSS: 100 << 10}, false},
		{"zombie", "Name:\tx\nState:\tZ (zombie)\n", memStat{}, true},
		{"bad unit", "VmRSS:\t100 MB\n", memStat{}, true},
		{"negative", "VmRSS:\t100 kB\nRssAnon:\t-1 kB\n", memStat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMemStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseMemStat error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseMemStat (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseMemStat(f *testing.F) {
	f.Add([]byte("VmRSS:\t27184 kB\nRssAnon:\t12000 kB\nRssFile:\t15100 kB\n"))
	f.Add([]byte("RssAnon: 1 kB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMemStat(data)
		if err != nil {
			return
		}
		if m.RSS < 0 || m.Anon < 0 || m.File < 0 {
			t.Errorf("parseMemStat(%q) = %+v: negative size", data, m)
		}
	})
}

func TestMedianMemStat(t *testing.T) {
	in := []memStat{{RSS: 5, Anon: 1, File: 9}, {RSS: 1, Anon: 7, File: 3}, {RSS: 3, Anon: 4, File: 6}}
	if diff := cmp.Diff(memStat{RSS: 3, Anon: 4, File: 6}, medianMemStat(in)); diff != "" {
		t.Errorf("medianMemStat (-want +got):\n%s", diff)
	}
	if got := medianMemStat(nil); got != (memStat{}) {
		t.Errorf("medianMemStat(nil) = %+v, want zero", got)
	}
}

func TestMedianValues(t *testing.T) {
	got := medianValues([]map[string]float64{
		{"p99": 3, "added_p99": 10, "only": 1},
		{"p99": 1, "added_p99": 30},
		{"p99": 2, "added_p99": 20},
		{"p99": 9},
	})
	want := map[string]float64{"p99": 2.5, "added_p99": 20, "only": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("medianValues (-want +got):\n%s", diff)
	}
}
