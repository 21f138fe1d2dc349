package jointoken

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretFile is the secret's name in the data directory.
const SecretFile = "join-secret"

// Issuer makes and checks join tokens. It is immutable after Open and safe
// for concurrent use.
type Issuer struct {
	secret  []byte
	dataDir string
}

// Open loads DATA_DIR/join-secret, creating it (0600) on first use. Two
// processes opening the same directory at once agree on one secret.
func Open(dataDir string) (*Issuer, error) {
	if dataDir == "" {
		return nil, errors.New("jointoken: open: data dir is required")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("jointoken: open: %w", err)
	}
	path := filepath.Join(dataDir, SecretFile)
	secret, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret, err = create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("jointoken: open: %w", err)
	}
	if len(secret) < 32 {
		return nil, fmt.Errorf("jointoken: open: %s: secret is %d bytes, want at least 32", path, len(secret))
	}
	return &Issuer{secret: secret, dataDir: dataDir}, nil
}

// create writes a new secret through a temporary file and a hard link, which
// fails if another process created the file first; then that one is used.
func create(path string) ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+SecretFile+"-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(secret); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, err
	}
	return secret, nil
}

// Token returns the token of workload ns/name.
func (i *Issuer) Token(ns, name string) string {
	m := hmac.New(sha256.New, i.secret)
	m.Write([]byte(ns + "/" + name))
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether token is workload ns/name's, in constant time.
func (i *Issuer) Verify(ns, name, token string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, i.secret)
	m.Write([]byte(ns + "/" + name))
	return hmac.Equal(got, m.Sum(nil))
}

// Path is where the token of workload ns/name lives under dataDir.
func Path(dataDir, ns, name string) string {
	return filepath.Join(dataDir, "tokens", ns, name)
}

// Workload names one WorkloadEntry.
type Workload struct{ Namespace, Name string }

// Write writes the token file (0600) of every workload, skipping files that
// already hold the right token. Names that are not a single path element are
// refused, so that no token is written outside DATA_DIR/tokens.
func (i *Issuer) Write(workloads []Workload) error {
	var errs []error
	for _, w := range workloads {
		if !pathElem(w.Namespace) || !pathElem(w.Name) {
			errs = append(errs, fmt.Errorf("jointoken: write: workload %q/%q: not a valid name", w.Namespace, w.Name))
			continue
		}
		path := Path(i.dataDir, w.Namespace, w.Name)
		tok := []byte(i.Token(w.Namespace, w.Name) + "\n")
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, tok) {
			continue
		}
		if err := writeFile(path, tok); err != nil {
			errs = append(errs, fmt.Errorf("jointoken: write: %w", err))
		}
	}
	return errors.Join(errs...)
}

func pathElem(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Read reads a token file as the proxy does.
func Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("jointoken: read: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("jointoken: read: %s is empty", path)
	}
	return tok, nil
}
