package xdsserver

import (
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNameListsUpdated(t *testing.T) {
	var ls nameLists
	for _, tc := range []struct {
		name        string
		from        []string
		add, remove []string
		want        []string
	}{
		{"first", nil, []string{"b", "a", "b", "*"}, nil, []string{"a", "b"}},
		{"add and remove", []string{"a", "b"}, []string{"c"}, []string{"a", "x"}, []string{"b", "c"}},
		{"both: removed", []string{"a"}, []string{"b"}, []string{"b"}, []string{"a"}},
		{"all removed", []string{"a"}, nil, []string{"a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := ls.get(tc.from)
			if diff := cmp.Diff(tc.want, ls.updated(from, tc.add, tc.remove).all()); diff != "" {
				t.Errorf("updated (-want +got):\n%s", diff)
			}
		})
	}
	a := ls.get([]string{"a", "b"})
	if ls.updated(a, []string{"a"}, []string{"c"}) != a {
		t.Errorf("an update that changes nothing made a new list")
	}
	if ls.get([]string{"a", "b"}) != a {
		t.Errorf("equal lists are not shared")
	}
	runtime.KeepAlive(a)
}

// A list no stream holds is dropped from the table.
func TestNameListsCollected(t *testing.T) {
	var ls nameLists
	l := ls.get([]string{"a", "b"})
	if ls.len() != 1 {
		t.Fatalf("%d lists, want 1", ls.len())
	}
	runtime.KeepAlive(l)
	eventually(t, "the list collected", func() bool {
		runtime.GC()
		return ls.len() == 0
	})
}
