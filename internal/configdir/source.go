package configdir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/trellis-mesh/trellis/internal/config"
)

// Defaults for the zero values of Source's tuning fields.
const (
	DefaultDebounce       = 25 * time.Millisecond
	DefaultRescanInterval = 2 * time.Second

	// maxDebounceWait bounds how long a steady stream of events can postpone
	// a scan.
	maxDebounceWait = 500 * time.Millisecond
)

// Update is one state of the directory. It is immutable.
type Update struct {
	// Version increases by one with every change published; 0 means nothing
	// has been read yet.
	Version uint64
	// Set holds the resources in force: for each resource the latest valid
	// version that is still in the directory.
	Set *config.Set
	// Errors lists every current problem, ordered by file and line; a kept
	// last-good resource's new, broken version is reported here.
	Errors []*config.Error
}

// Source watches one directory of Istio YAML. See the package documentation
// for its semantics. Create it with New, start it with Run.
type Source struct {
	// Debounce is how long Run waits after a file-system event for more
	// events before it rescans; zero means DefaultDebounce. Set before Run.
	Debounce time.Duration
	// RescanInterval is the period of the safety rescan that catches events
	// fsnotify missed; zero means DefaultRescanInterval. Set before Run.
	RescanInterval time.Duration

	dir string
	log *slog.Logger

	mu    sync.Mutex
	files map[string]*fileState // by path, for the files of the last scan
	cur   Update
	subs  []chan Update
}

// fileState is what one file currently contributes.
type fileState struct {
	sum     [sha256.Size]byte
	stamp   stamp              // size and mtime when last read
	inForce []*config.Resource // the file's valid resources plus kept last-good versions
	errs    []*config.Error    // from the latest parse
}

// New returns a Source for dir. Nothing is read until Run. A nil logger
// discards logs.
func New(dir string, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		dir:   dir,
		log:   logger.With("component", "configdir", "dir", dir),
		files: make(map[string]*fileState),
	}
}

// Current returns the latest state. Before the first scan it is the zero
// Update (Version 0, empty Set).
func (s *Source) Current() Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Subscribe returns a channel that receives every new state, latest wins:
// the channel holds at most one Update and a newer one replaces an unread
// older one, so a slow consumer sees only the newest state and the Source
// never blocks on it. If a state has already been read, the channel starts
// with it. The channel is never closed; consumers stop on their own context.
// Safe for concurrent use.
func (s *Source) Subscribe() <-chan Update {
	ch := make(chan Update, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Version > 0 {
		ch <- s.cur
	}
	s.subs = append(s.subs, ch)
	return ch
}

// Run reads the directory, then watches it until ctx is done: file-system
// events (debounced) and a periodic safety rescan trigger a rescan, and every
// change is published to subscribers. It returns nil when ctx is done, or an
// error if the directory cannot be watched at all. Run must be called once.
func (s *Source) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("configdir: watch %s: %w", s.dir, err)
	}
	defer w.Close()
	if err := w.Add(s.dir); err != nil {
		return fmt.Errorf("configdir: watch %s: %w", s.dir, err)
	}
	s.Rescan()

	debounce := cmpOr(s.Debounce, DefaultDebounce)
	ticker := time.NewTicker(cmpOr(s.RescanInterval, DefaultRescanInterval))
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pendingSince time.Time
	// pending names the files events announced since the last read; full
	// asks for a listing instead (an event on the directory itself, or
	// events lost).
	pending, full := map[string]bool{}, false
	rescans := 0

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("configdir: watcher closed")
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if filepath.Dir(ev.Name) == filepath.Clean(s.dir) {
				pending[filepath.Join(s.dir, filepath.Base(ev.Name))] = true // Rescan's key
			} else {
				full = true
			}
			now := time.Now()
			if pendingSince.IsZero() {
				pendingSince = now
			}
			timer.Reset(min(debounce, max(0, pendingSince.Add(maxDebounceWait).Sub(now))))
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("configdir: watcher closed")
			}
			s.log.Warn("watch error; rescanning", "err", err)
			full = true // events may be lost (queue overflow)
			if pendingSince.IsZero() {
				pendingSince = time.Now()
			}
			timer.Reset(debounce)
		case <-timer.C:
			pendingSince = time.Time{}
			if full {
				s.Rescan()
			} else {
				s.reread(pending)
			}
			clear(pending)
			full = false
		case <-ticker.C:
			if len(w.WatchList()) == 0 { // the directory was removed and maybe recreated
				if err := w.Add(s.dir); err == nil {
					s.log.Info("watching directory again")
				}
			}
			rescans++
			s.rescan(rescans%fullReadEvery != 0)
		}
	}
}

// stamp is what a stat tells of a file's content without reading it.
type stamp struct {
	size int64
	mod  time.Time
}

// stampOf returns info's stamp; the zero stamp (never trusted, as no file
// has it) when info is nil.
func stampOf(info fs.FileInfo) stamp {
	if info == nil {
		return stamp{}
	}
	return stamp{size: info.Size(), mod: info.ModTime()}
}

// fullReadEvery is how many periodic rescans trust unchanged stamps before
// one reads every file again (a write that kept size and mtime, on a file
// system with coarse timestamps, and whose event was lost).
const fullReadEvery = 15

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Rescan reads the directory now and publishes a new Update if anything
// changed. Run calls it; it is exported for callers that want a synchronous
// read (and for tests). Safe for concurrent use.
func (s *Source) Rescan() { s.rescan(false) }

// rescan lists the directory and reads its config files; with trustStamps,
// a file whose size and mtime are those of its last read is not read again
// (the periodic safety rescan: with 11000 files, reading them all every 2 s
// kept an idle trellisd busy).
func (s *Source) rescan(trustStamps bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("cannot list directory; keeping the current config", "err", err)
		return
	}
	changed := s.cur.Version == 0
	seen := make(map[string]bool)
	for _, e := range entries {
		if !config.IsConfigFile(e.Name()) {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		info, statErr := os.Stat(path)
		if statErr != nil || info.IsDir() {
			continue // vanished since the listing, or a symlink to a directory
		}
		if old := s.files[path]; trustStamps && old != nil && old.stamp == stampOf(info) {
			seen[path] = true
			continue
		}
		data, readErr := os.ReadFile(path)
		if errors.Is(readErr, fs.ErrNotExist) {
			continue
		}
		seen[path] = true
		if s.updateFile(path, data, readErr, stampOf(info)) {
			changed = true
		}
	}
	for path := range s.files {
		if !seen[path] {
			delete(s.files, path)
			s.log.Info("file removed", "file", path)
			changed = true
		}
	}
	if changed {
		s.publish()
	}
}

// reread reads only the files named by paths (events named them), with
// the same last-good rules as Rescan: with 2000 files in the directory,
// reading one instead of all after an edit cuts ~30 ms before every push
// (issue 5). A path that no longer holds a config file removes what it
// contributed.
func (s *Source) reread(paths map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.cur.Version == 0
	for path := range paths {
		if !config.IsConfigFile(filepath.Base(path)) {
			continue
		}
		info, statErr := os.Stat(path)
		var data []byte
		readErr := statErr
		if statErr == nil && !info.IsDir() {
			data, readErr = os.ReadFile(path)
		}
		if errors.Is(readErr, fs.ErrNotExist) || (statErr == nil && info.IsDir()) {
			if _, ok := s.files[path]; ok {
				delete(s.files, path)
				s.log.Info("file removed", "file", path)
				changed = true
			}
			continue
		}
		if s.updateFile(path, data, readErr, stampOf(info)) {
			changed = true
		}
	}
	if changed {
		s.publish()
	}
}

// updateFile re-parses one file if its content changed and applies the
// last-good rules. It reports whether anything changed.
func (s *Source) updateFile(path string, data []byte, readErr error, st0 stamp) bool {
	old := s.files[path]
	var parsed *config.File
	var sum [sha256.Size]byte
	if readErr != nil {
		parsed = &config.File{Name: path, Unreadable: true,
			Errors: []*config.Error{{File: path, Msg: fmt.Sprintf("cannot read file: %v", readErr)}}}
	} else {
		sum = sha256.Sum256(data)
		if old != nil && old.sum == sum {
			old.stamp = st0
			return false
		}
		parsed = config.ParseFile(path, data)
	}
	st := &fileState{sum: sum, stamp: st0, errs: parsed.Errors}
	switch {
	case parsed.Unreadable:
		// Nothing could be decoded: the file keeps what it contributed.
		if old != nil {
			st.inForce = old.inForce
		}
	default:
		st.inForce = slices.Clone(parsed.Resources)
		if old != nil {
			for _, k := range parsed.Failed {
				if prev := findKey(old.inForce, k); prev != nil {
					st.inForce = append(st.inForce, prev) // last good stays in force
				}
			}
		}
	}
	s.files[path] = st
	return true
}

func findKey(rs []*config.Resource, k config.Key) *config.Resource {
	for _, r := range rs {
		if r.Key() == k {
			return r
		}
	}
	return nil
}

// publish builds the new Update from every file's state, logs the errors
// that are new, and delivers it. s.mu is held.
func (s *Source) publish() {
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	files := make([]*config.File, 0, len(paths))
	for _, p := range paths {
		st := s.files[p]
		files = append(files, &config.File{Name: p, Resources: st.inForce, Errors: st.errs})
	}
	set, errs := config.Merge(files)

	before := make(map[string]bool, len(s.cur.Errors))
	for _, e := range s.cur.Errors {
		before[e.Error()] = true
	}
	for _, e := range errs {
		if !before[e.Error()] {
			s.log.Warn("invalid config: "+e.Error(), "file", e.File, "line", e.Line, "resource", e.Resource, "field", e.Field)
		}
	}
	s.cur = Update{Version: s.cur.Version + 1, Set: set, Errors: errs}
	s.log.Info("config updated", "version", s.cur.Version, "resources", set.Len(), "files", len(files), "errors", len(errs))
	for _, ch := range s.subs {
		offer(ch, s.cur)
	}
}

// offer puts u into ch, replacing an unread older value. Only publish sends,
// under s.mu, so the loop ends after at most one drain.
func offer(ch chan Update, u Update) {
	for {
		select {
		case ch <- u:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
