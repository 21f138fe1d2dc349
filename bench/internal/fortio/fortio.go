package fortio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Percentiles the harness asks fortio for (-p).
var Percentiles = []float64{50, 90, 99, 99.9}

// Result is the part of fortio's JSON output the harness uses.
type Result struct {
	ActualQPS float64
	Duration  time.Duration
	Count     int64                     // requests completed
	OK        int64                     // answered 200 (HTTP) or SERVING (gRPC)
	Latency   map[float64]time.Duration // percentile → latency
	Codes     map[string]int64
}

// Errors is the number of requests that did not succeed.
func (r *Result) Errors() int64 { return r.Count - r.OK }

type jsonResult struct {
	ActualQPS         float64
	ActualDuration    int64
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
}

// Parse decodes fortio's -json output.
func Parse(data []byte) (*Result, error) {
	var j jsonResult
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("parse fortio json: %w", err)
	}
	if j.DurationHistogram.Count < 0 || j.ActualDuration < 0 {
		return nil, errors.New("parse fortio json: negative count or duration")
	}
	r := &Result{
		ActualQPS: j.ActualQPS,
		Duration:  time.Duration(j.ActualDuration),
		Count:     j.DurationHistogram.Count,
		Latency:   make(map[float64]time.Duration, len(j.DurationHistogram.Percentiles)),
		Codes:     j.RetCodes,
	}
	for _, p := range j.DurationHistogram.Percentiles {
		if p.Value < 0 || p.Value > 1e6 {
			return nil, fmt.Errorf("parse fortio json: p%v = %v s out of range", p.Percentile, p.Value)
		}
		r.Latency[p.Percentile] = time.Duration(p.Value * float64(time.Second))
	}
	r.OK = j.RetCodes["200"] + j.RetCodes["SERVING"]
	return r, nil
}

// Load describes one fortio load run.
type Load struct {
	Target      string        // URL for HTTP, host:port for gRPC
	QPS         float64       // 0: as fast as possible
	Connections int           // -c
	Duration    time.Duration // -t
	PayloadSize int           // bytes; >0 makes HTTP requests POST with a random body the echo server returns
	Host        string        // Host header (HTTP) or :authority (gRPC); empty leaves fortio's default
	GRPC        bool          // gRPC ping instead of HTTP
	Streams     int           // gRPC streams per connection (-s); 0 is fortio's default 1
	// CPUs pins fortio with taskset -c.
	CPUs string
}

// Args returns fortio's command line for l, writing JSON to jsonPath.
func (l Load) Args(jsonPath string) []string {
	args := []string{"load", "-quiet", "-json", jsonPath,
		"-qps", strconv.FormatFloat(l.QPS, 'f', -1, 64),
		"-c", strconv.Itoa(max(l.Connections, 1)),
		"-t", l.Duration.String(),
		// 10 µs histogram buckets: sidecar hops add tens to hundreds of µs.
		"-r", "0.00001",
		"-p", percentileList(),
		// Failed requests must count; keep going to report them.
		"-allow-initial-errors",
	}
	if l.Host != "" {
		args = append(args, "-H", "Host: "+l.Host)
	}
	if l.GRPC {
		args = append(args, "-grpc", "-ping")
		if l.Streams > 0 {
			args = append(args, "-s", strconv.Itoa(l.Streams))
		}
		if l.PayloadSize > 0 {
			args = append(args, "-payload-size", strconv.Itoa(l.PayloadSize))
		}
	} else if l.PayloadSize > 0 {
		args = append(args, "-payload-size", strconv.Itoa(l.PayloadSize))
	}
	return append(args, l.Target)
}

func percentileList() string {
	parts := make([]string, len(Percentiles))
	for i, p := range Percentiles {
		parts[i] = strconv.FormatFloat(p, 'f', -1, 64)
	}
	return strings.Join(parts, ",")
}

// Run executes fortio (the binary at bin) for l and returns its result. dir
// receives the JSON and log files named after name.
func Run(ctx context.Context, bin, dir, name string, l Load) (*Result, error) {
	jsonPath := filepath.Join(dir, name+".json")
	path, args := bin, l.Args(jsonPath)
	if l.CPUs != "" {
		path, args = "taskset", append([]string{"-c", l.CPUs, bin}, args...)
	}
	// Bounded: the run's duration plus generous set-up and drain time.
	ctx, cancel := context.WithTimeout(ctx, l.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, name+".log"), out, 0o644)
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %w: %s", name, err, tail(out, 300))
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %w", name, err)
	}
	res, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %w", name, err)
	}
	return res, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
