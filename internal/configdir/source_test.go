package configdir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	networkingv1 "istio.io/api/networking/v1"

	"github.com/trellis-mesh/trellis/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitDeadline bounds every wait. Changes normally arrive within the
// debounce (a few tens of milliseconds); the bound is generous for a loaded
// machine.
const waitDeadline = 5 * time.Second

func workloadEntry(name, addr string) string {
	return "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: " + name +
		"\nspec:\n  address: " + addr + "\n"
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content the way editors do: a hidden temporary file,
// renamed over the target.
func replaceFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// addresses summarises a set as name → address.
func addresses(set *config.Set) map[string]string {
	out := make(map[string]string)
	for _, r := range set.List(config.KindWorkloadEntry) {
		out[r.Meta.Name] = r.Spec.(*networkingv1.WorkloadEntry).GetAddress()
	}
	return out
}

func errorTexts(errs []*config.Error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// startSource runs a Source on dir until the test ends and returns its
// subscription, after the first Update has arrived.
func startSource(t *testing.T, dir string) (*Source, <-chan Update) {
	t.Helper()
	src := New(dir, nil)
	src.RescanInterval = time.Hour // exercise fsnotify; TestSafetyRescan covers the rescan
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	ch := src.Subscribe()
	waitFor(t, ch, "first update", func(u Update) bool { return u.Version > 0 })
	return src, ch
}

// waitFor reads updates until cond holds, failing after waitDeadline.
func waitFor(t *testing.T, ch <-chan Update, what string, cond func(Update) bool) Update {
	t.Helper()
	deadline := time.NewTimer(waitDeadline)
	defer deadline.Stop()
	var last Update
	for {
		select {
		case u := <-ch:
			if cond(u) {
				return u
			}
			last = u
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; last update: version %d, %v, errors %v",
				what, last.Version, addresses(last.Set), errorTexts(last.Errors))
		}
	}
}

func TestSourceFollowsDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.1"))
	writeFile(t, dir, ".hidden.yaml", workloadEntry("hidden", "127.0.0.9"))
	writeFile(t, dir, "readme.txt", "not config")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "sub/nested.yaml", workloadEntry("nested", "127.0.0.8"))

	src, ch := startSource(t, dir)
	if diff := cmp.Diff(map[string]string{"a": "127.0.0.1"}, addresses(src.Current().Set)); diff != "" {
		t.Fatalf("initial set (-want +got):\n%s", diff)
	}

	steps := []struct {
		name   string
		change func()
		want   map[string]string
	}{
		{"edit in place", func() { writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.2")) },
			map[string]string{"a": "127.0.0.2"}},
		{"new file", func() { writeFile(t, dir, "b.yml", workloadEntry("b", "127.0.0.3")) },
			map[string]string{"a": "127.0.0.2", "b": "127.0.0.3"}},
		{"editor rename", func() { replaceFile(t, dir, "b.yml", workloadEntry("b", "127.0.0.4")) },
			map[string]string{"a": "127.0.0.2", "b": "127.0.0.4"}},
		{"rename to another name", func() {
			if err := os.Rename(filepath.Join(dir, "b.yml"), filepath.Join(dir, "c.yaml")); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"a": "127.0.0.2", "b": "127.0.0.4"}},
		{"rename away from *.yaml", func() {
			if err := os.Rename(filepath.Join(dir, "c.yaml"), filepath.Join(dir, "c.yaml.bak")); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"a": "127.0.0.2"}},
		{"delete", func() {
			if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			u := waitFor(t, ch, step.name, func(u Update) bool { return cmp.Equal(step.want, addresses(u.Set)) })
			if len(u.Errors) != 0 {
				t.Errorf("unexpected errors: %v", errorTexts(u.Errors))
			}
		})
	}
}

func TestSourceKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.1")+"---\n"+workloadEntry("b", "127.0.0.2"))
	_, ch := startSource(t, dir)
	path := filepath.Join(dir, "a.yaml")

	t.Run("invalid new version keeps the previous one", func(t *testing.T) {
		// a gets a bad address, b a good new one.
		writeFile(t, dir, "a.yaml", workloadEntry("a", "'not an ip'")+"---\n"+workloadEntry("b", "127.0.0.3"))
		u := waitFor(t, ch, "b updated", func(u Update) bool { return addresses(u.Set)["b"] == "127.0.0.3" })
		if got := addresses(u.Set)["a"]; got != "127.0.0.1" {
			t.Errorf("a = %q, want the last good 127.0.0.1", got)
		}
		want := []string{path + `:6: WorkloadEntry default/a: spec.address: "not an ip" is not an IP address or DNS name: "not an ip" is not a valid DNS label`}
		if diff := cmp.Diff(want, errorTexts(u.Errors)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("broken YAML keeps everything the file had", func(t *testing.T) {
		writeFile(t, dir, "a.yaml", "apiVersion: [\n")
		u := waitFor(t, ch, "YAML error", func(u Update) bool {
			return len(u.Errors) == 1 && strings.Contains(u.Errors[0].Msg, "invalid YAML")
		})
		if diff := cmp.Diff(map[string]string{"a": "127.0.0.1", "b": "127.0.0.3"}, addresses(u.Set)); diff != "" {
			t.Errorf("set (-want +got):\n%s", diff)
		}
		if u.Errors[0].File != path {
			t.Errorf("error file = %q, want %q", u.Errors[0].File, path)
		}
	})
	t.Run("fixed file replaces the kept versions", func(t *testing.T) {
		writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.5"))
		u := waitFor(t, ch, "fixed", func(u Update) bool { return cmp.Equal(map[string]string{"a": "127.0.0.5"}, addresses(u.Set)) })
		if len(u.Errors) != 0 {
			t.Errorf("unexpected errors: %v", errorTexts(u.Errors))
		}
	})
	t.Run("deleted file removes even kept resources", func(t *testing.T) {
		writeFile(t, dir, "a.yaml", workloadEntry("a", "bad_address"))
		waitFor(t, ch, "error", func(u Update) bool { return len(u.Errors) == 1 })
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ch, "empty", func(u Update) bool { return u.Set.Len() == 0 && len(u.Errors) == 0 })
	})
}

func TestSourceDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", workloadEntry("w", "127.0.0.1"))
	_, ch := startSource(t, dir)
	writeFile(t, dir, "b.yaml", workloadEntry("w", "127.0.0.2"))
	u := waitFor(t, ch, "duplicate error", func(u Update) bool { return len(u.Errors) == 1 })
	if got := addresses(u.Set)["w"]; got != "127.0.0.1" {
		t.Errorf("w = %q, want the first file's 127.0.0.1", got)
	}
	want := filepath.Join(dir, "b.yaml") + ":1: WorkloadEntry default/w: duplicate resource: already defined at " + filepath.Join(dir, "a.yaml") + ":1"
	if got := u.Errors[0].Error(); got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestSourceBrokenFromTheStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "kind: [\n")
	src, _ := startSource(t, dir)
	u := src.Current()
	if u.Set.Len() != 0 || len(u.Errors) != 1 {
		t.Fatalf("got %d resources, errors %v; want none and one error", u.Set.Len(), errorTexts(u.Errors))
	}
}

// TestSubscribeLatestWins checks that an unread subscriber never blocks the
// source and then receives only the newest state.
func TestSubscribeLatestWins(t *testing.T) {
	dir := t.TempDir()
	src := New(dir, nil)
	slow := src.Subscribe()
	for i := range 5 {
		writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0."+string(rune('1'+i))))
		src.Rescan() // would block forever if publishing waited for the reader
	}
	u := <-slow
	if u.Version != 5 || addresses(u.Set)["a"] != "127.0.0.5" {
		t.Errorf("got version %d %v, want version 5 with a=127.0.0.5", u.Version, addresses(u.Set))
	}
	select {
	case extra := <-slow:
		t.Errorf("unexpected second update, version %d", extra.Version)
	default:
	}
	late := src.Subscribe()
	if got := (<-late).Version; got != 5 {
		t.Errorf("late subscriber got version %d, want the current 5", got)
	}
	src.Rescan()
	if src.Current().Version != 5 {
		t.Errorf("rescan without changes published version %d", src.Current().Version)
	}
}

// TestSafetyRescan covers changes that no event announces: Rescan alone must
// pick them up.
func TestSafetyRescan(t *testing.T) {
	dir := t.TempDir()
	src := New(dir, nil)
	src.Rescan()
	if v := src.Current().Version; v != 1 {
		t.Fatalf("first scan of an empty dir gave version %d, want 1", v)
	}
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.1"))
	src.Rescan()
	if diff := cmp.Diff(map[string]string{"a": "127.0.0.1"}, addresses(src.Current().Set)); diff != "" {
		t.Errorf("set (-want +got):\n%s", diff)
	}
}

func TestRunMissingDirectory(t *testing.T) {
	src := New(filepath.Join(t.TempDir(), "nope"), nil)
	err := src.Run(context.Background())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run = %v, want a not-exist error", err)
	}
}

// TestRereadNamedFiles: reading only the files events named follows edits,
// keeps the last good version of a broken file, drops a removed file and
// leaves files it was not told about alone.
func TestRereadNamedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.1"))
	writeFile(t, dir, "b.yaml", workloadEntry("b", "127.0.0.2"))
	src := New(dir, nil)
	src.Rescan()
	a := filepath.Join(dir, "a.yaml")
	steps := []struct {
		name  string
		edit  func()
		paths []string
		want  map[string]string
	}{
		{"edit a", func() { replaceFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.9")) }, []string{a},
			map[string]string{"a": "127.0.0.9", "b": "127.0.0.2"}},
		{"a broken: last good", func() { replaceFile(t, dir, "a.yaml", "kind: [") }, []string{a},
			map[string]string{"a": "127.0.0.9", "b": "127.0.0.2"}},
		{"b edited, not named", func() { replaceFile(t, dir, "b.yaml", workloadEntry("b", "127.0.0.8")) }, []string{a},
			map[string]string{"a": "127.0.0.9", "b": "127.0.0.2"}},
		{"a removed, hidden file named", func() {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
		}, []string{a, filepath.Join(dir, ".a.yaml.tmp")}, map[string]string{"b": "127.0.0.2"}},
	}
	for _, st := range steps {
		st.edit()
		paths := map[string]bool{}
		for _, p := range st.paths {
			paths[p] = true
		}
		src.reread(paths)
		if diff := cmp.Diff(st.want, addresses(src.Current().Set)); diff != "" {
			t.Errorf("%s: set (-want +got):\n%s", st.name, diff)
		}
	}
	src.Rescan() // the safety rescan finds the edit no event named
	if diff := cmp.Diff(map[string]string{"b": "127.0.0.8"}, addresses(src.Current().Set)); diff != "" {
		t.Errorf("after rescan: set (-want +got):\n%s", diff)
	}
}

// TestPeriodicRescanTrustsStamps: the periodic rescan reads only files
// whose size or mtime changed; a full Rescan reads them all.
func TestPeriodicRescanTrustsStamps(t *testing.T) {
	dir := t.TempDir()
	src := New(dir, nil)
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.1"))
	writeFile(t, dir, "b.yaml", workloadEntry("b", "127.0.0.2"))
	src.Rescan()
	path := filepath.Join(dir, "a.yaml")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, mtime put back: a stamp-trusting rescan cannot see it.
	writeFile(t, dir, "a.yaml", workloadEntry("a", "127.0.0.9"))
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	// Another file grows: its stamp changed, so it is read.
	writeFile(t, dir, "b.yaml", workloadEntry("b", "127.0.0.22"))
	src.rescan(true)
	want := map[string]string{"a": "127.0.0.1", "b": "127.0.0.22"}
	if diff := cmp.Diff(want, addresses(src.Current().Set)); diff != "" {
		t.Errorf("after a stamp-trusting rescan (-want +got):\n%s", diff)
	}
	src.Rescan()
	want["a"] = "127.0.0.9"
	if diff := cmp.Diff(want, addresses(src.Current().Set)); diff != "" {
		t.Errorf("after a full rescan (-want +got):\n%s", diff)
	}
	// A removed file is noticed without reading anything.
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	src.rescan(true)
	if diff := cmp.Diff(map[string]string{"a": "127.0.0.9"}, addresses(src.Current().Set)); diff != "" {
		t.Errorf("after removing b.yaml (-want +got):\n%s", diff)
	}
}
