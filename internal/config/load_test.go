package config

import "testing"

func TestLoadDirBookinfo(t *testing.T) {
	set, errs := LoadDir("testdata/bookinfo")
	for _, e := range errs {
		t.Errorf("unexpected error: %v", e)
	}
	if got, want := set.Len(), 16; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}
