package jwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults as Envoy's RemoteJwks.
const (
	DefaultCacheDuration = 5 * time.Minute
	DefaultFetchTimeout  = time.Second
	// failedRefetch is how long a failed fetch is remembered before the next
	// request may try again (Envoy's failed_refetch_duration default, 1s), so
	// that an unreachable JWKS server is not hammered by every request.
	failedRefetch = time.Second
	maxJWKSBytes  = 1 << 20
)

// Remote names a JWKS document to fetch.
type Remote struct {
	URI           string
	Timeout       time.Duration // 0: DefaultFetchTimeout
	CacheDuration time.Duration // 0: DefaultCacheDuration
}

// CacheOptions configure NewCache. Zero values are documented per field.
type CacheOptions struct {
	// Client fetches documents; nil uses a client that ignores the
	// environment's proxy settings.
	Client *http.Client
	// Logger; nil uses slog.Default(). A "component" attribute is added.
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Cache holds fetched JWKS documents by URI. It outlives proxy configs, so
// that a config change does not refetch. Safe for concurrent use. It starts
// no goroutines: a fetch runs on the goroutine of the first caller that
// needs it, others wait for it (or for their own context).
type Cache struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	keys    *jose.JSONWebKeySet // nil until a fetch succeeded
	expires time.Time           // keys are good until then
	failed  time.Time           // last failure; retry after failedRefetch
	err     error
	pending chan struct{} // non-nil while a fetch runs; closed when it ends
}

// NewCache returns an empty cache.
func NewCache(opts CacheOptions) *Cache {
	c := &Cache{client: opts.Client, log: opts.Logger, now: opts.Now, entries: map[string]*entry{}}
	if c.client == nil {
		c.client = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "jwt")
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Keys returns the document at r.URI, fetching it when it is absent or
// older than r.CacheDuration. It fails closed: when the document cannot be
// fetched it returns an error wrapping ErrJWKSFetch, even if an expired copy
// is held. ctx bounds only the caller's wait.
func (c *Cache) Keys(ctx context.Context, r Remote) (*jose.JSONWebKeySet, error) {
	for {
		c.mu.Lock()
		e := c.entries[r.URI]
		if e == nil {
			e = &entry{}
			c.entries[r.URI] = e
		}
		now := c.now()
		switch {
		case e.keys != nil && now.Before(e.expires):
			keys := e.keys
			c.mu.Unlock()
			return keys, nil
		case e.pending != nil:
			ch := e.pending
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("jwks %s: %w: %w", r.URI, ErrJWKSFetch, ctx.Err())
			}
		case e.err != nil && now.Sub(e.failed) < failedRefetch:
			err := e.err
			c.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		e.pending = ch
		c.mu.Unlock()

		keys, err := c.fetch(context.WithoutCancel(ctx), r)

		c.mu.Lock()
		e.pending = nil
		if err != nil {
			e.keys, e.err, e.failed = nil, err, c.now()
			c.log.Warn("jwks fetch failed", "uri", r.URI, "error", err)
		} else {
			d := r.CacheDuration
			if d <= 0 {
				d = DefaultCacheDuration
			}
			e.keys, e.err, e.expires = keys, nil, c.now().Add(d)
		}
		close(ch)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return keys, nil
	}
}

func (c *Cache) fetch(ctx context.Context, r Remote) (*jose.JSONWebKeySet, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URI, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w: %w", r.URI, ErrJWKSFetch, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w: %w", r.URI, ErrJWKSFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: %w: status %d", r.URI, ErrJWKSFetch, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w: %w", r.URI, ErrJWKSFetch, err)
	}
	ks, err := ParseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.URI, errors.Join(ErrJWKSFetch, err))
	}
	return ks, nil
}

// Close closes the fetch client's idle connections (and their goroutines).
func (c *Cache) Close() error {
	c.client.CloseIdleConnections()
	return nil
}
