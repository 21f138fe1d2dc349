package identity

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// fileCache serves "file-cert:" and "file-root:" secrets, re-reading a file
// only when its size or modification time changed, so that a handshake
// costs two stat calls and a renewed file takes effect on the next one.
type fileCache struct {
	mu    sync.Mutex
	pairs map[string]pairEntry
	pools map[string]poolEntry
}

type stamp struct {
	size int64
	mod  time.Time
}

type pairEntry struct {
	cert, key stamp
	val       *tls.Certificate
}

type poolEntry struct {
	st  stamp
	val *x509.CertPool
}

func statStamp(path string) (stamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{size: st.Size(), mod: st.ModTime()}, nil
}

func (f *fileCache) keyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cs, err := statStamp(certFile)
	if err != nil {
		return nil, fmt.Errorf("identity: file-cert: %w", err)
	}
	ks, err := statStamp(keyFile)
	if err != nil {
		return nil, fmt.Errorf("identity: file-cert: %w", err)
	}
	k := certFile + "~" + keyFile
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.pairs[k]; ok && e.cert == cs && e.key == ks {
		return e.val, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("identity: file-cert: %w", err)
	}
	if f.pairs == nil {
		f.pairs = map[string]pairEntry{}
	}
	f.pairs[k] = pairEntry{cert: cs, key: ks, val: &pair}
	return &pair, nil
}

func (f *fileCache) pool(path string) (*x509.CertPool, error) {
	st, err := statStamp(path)
	if err != nil {
		return nil, fmt.Errorf("identity: file-root: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.pools[path]; ok && e.st == st {
		return e.val, nil
	}
	p, err := readPool(path)
	if err != nil {
		return nil, fmt.Errorf("identity: file-root: %w", err)
	}
	if f.pools == nil {
		f.pools = map[string]poolEntry{}
	}
	f.pools[path] = poolEntry{st: st, val: p}
	return p, nil
}
