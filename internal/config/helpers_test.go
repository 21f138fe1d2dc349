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
