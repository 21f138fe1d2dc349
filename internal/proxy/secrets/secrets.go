package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// Name prefixes served from files (docs/xds.md, "Secrets").
const (
	CertPrefix = "file-cert:" // file-cert:CERT_PATH~KEY_PATH
	RootPrefix = "file-root:" // file-root:CA_PATH
)

// DefaultCheckInterval is how often files are checked for changes.
const DefaultCheckInterval = time.Second

// ErrUnknownName is returned for a name that is not a file name and no
// fallback serves.
var ErrUnknownName = errors.New("secrets: unknown secret name")

// Options configure Files. Zero values are documented per field.
type Options struct {
	// Fallback serves names that are not file names ("default",
	// "ROOTCA"); nil answers ErrUnknownName for them.
	Fallback runtime.Secrets
	// CheckInterval is the least time between two checks of one secret's
	// files; 0 means DefaultCheckInterval, negative checks on every call.
	CheckInterval time.Duration
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
}

// Files is a runtime.Secrets over files. It is safe for concurrent use and
// does only local file I/O.
type Files struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

var _ runtime.Secrets = (*Files)(nil)

// entry is one name's cached value.
type entry struct {
	checked time.Time
	stamps  []stamp
	cert    *tls.Certificate
	roots   *x509.CertPool
	err     error // the last load's error when there is no good value
}

// stamp identifies one version of a file.
type stamp struct {
	size int64
	mod  time.Time
}

// New returns an empty Files.
func New(opts Options) *Files {
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Files{opts: opts, log: log.With("component", "secrets"), now: time.Now, entries: map[string]*entry{}}
}

// Certificate returns the certificate and key a "file-cert:" name points
// to, or asks the fallback.
func (f *Files) Certificate(name string) (*tls.Certificate, error) {
	rest, ok := strings.CutPrefix(name, CertPrefix)
	if !ok {
		if f.opts.Fallback == nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownName, name)
		}
		return f.opts.Fallback.Certificate(name)
	}
	certPath, keyPath, ok := strings.Cut(rest, "~")
	if !ok || certPath == "" || keyPath == "" {
		return nil, fmt.Errorf("secrets: %q: want %sCERT~KEY", name, CertPrefix)
	}
	e, err := f.load(name, []string{certPath, keyPath}, func(data [][]byte, e *entry) error {
		c, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return err
		}
		if c.Leaf == nil && len(c.Certificate) > 0 {
			c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		e.cert = &c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.cert, nil
}

// Roots returns the certificates of a "file-root:" name's PEM file, or
// asks the fallback.
func (f *Files) Roots(name string) (*x509.CertPool, error) {
	path, ok := strings.CutPrefix(name, RootPrefix)
	if !ok {
		if f.opts.Fallback == nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownName, name)
		}
		return f.opts.Fallback.Roots(name)
	}
	if path == "" {
		return nil, fmt.Errorf("secrets: %q: want %sCA_PATH", name, RootPrefix)
	}
	e, err := f.load(name, []string{path}, func(data [][]byte, e *entry) error {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data[0]) {
			return errors.New("no PEM certificate found")
		}
		e.roots = pool
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.roots, nil
}

// load returns name's entry, (re)reading paths with parse when they
// changed since the last check. A failed reload keeps the last good value.
func (f *Files) load(name string, paths []string, parse func([][]byte, *entry) error) (*entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	e := f.entries[name]
	if e != nil && now.Sub(e.checked) < f.opts.CheckInterval {
		return e.result()
	}
	if e == nil {
		e = &entry{}
		f.entries[name] = e
	}
	e.checked = now
	stamps := make([]stamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return e.fail(f.log, name, fmt.Errorf("secrets: %q: %w", name, err))
		}
		stamps[i] = stamp{fi.Size(), fi.ModTime()}
	}
	if e.stamps != nil && equalStamps(e.stamps, stamps) {
		return e.result()
	}
	data := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return e.fail(f.log, name, fmt.Errorf("secrets: %q: %w", name, err))
		}
		data[i] = b
	}
	next := &entry{checked: now, stamps: stamps}
	if err := parse(data, next); err != nil {
		return e.fail(f.log, name, fmt.Errorf("secrets: %q: %w", name, err))
	}
	if e.stamps != nil {
		f.log.Info("secret reloaded", "name", name)
	}
	*e = *next
	return e, nil
}

func (e *entry) result() (*entry, error) {
	if e.cert == nil && e.roots == nil {
		return nil, e.err
	}
	return e, nil
}

// fail records err; a previously loaded value stays in use.
func (e *entry) fail(log *slog.Logger, name string, err error) (*entry, error) {
	if e.cert != nil || e.roots != nil {
		log.Warn("secret reload failed, keeping the last good one", "name", name, "error", err)
		return e, nil
	}
	e.err = err
	return nil, err
}

func equalStamps(a, b []stamp) bool {
	for i := range a {
		if a[i].size != b[i].size || !a[i].mod.Equal(b[i].mod) {
			return false
		}
	}
	return len(a) == len(b)
}
