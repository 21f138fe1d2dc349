package config

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func durationOf(t *testing.T, s string) *durationpb.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return durationpb.New(d)
}

func TestProtoDuration(t *testing.T) {
	cases := []struct{ in, want string }{
		{"5s", "5s"}, {"100ms", "0.1s"}, {"1m30s", "90s"}, {"1.5s", "1.5s"}, {"-500ms", "-0.5s"}, {"1ns", "0.000000001s"}, {"0s", "0s"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			d, err := time.ParseDuration(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := protoDuration(d); got != tc.want {
				t.Errorf("protoDuration(%s) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
