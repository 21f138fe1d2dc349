package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// check is one readiness condition: GET url answers 200.
type check struct {
	what string // "trellisd", "proxy default/reviews-v3"
	url  string
	log  string // where to look when it never becomes ready
}

// pollInterval is how often a readiness URL is tried.
const pollInterval = 100 * time.Millisecond

// errNotReady is wrapped by waitReady's timeout errors.
var errNotReady = errors.New("not ready")

// waitReady polls each check in turn until it answers 200. It fails when
// deadline passes (naming the check and its log), when ctx is done, or as
// soon as a child exits.
func waitReady(ctx context.Context, client *http.Client, cs *children, deadline time.Time, checks ...check) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for _, c := range checks {
		var last error
		for {
			if last = get200(ctx, client, c.url); last == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("wait: %s %w: GET %s: %v; see %s", c.what, errNotReady, c.url, last, c.log)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait: %s: %w", c.what, ctx.Err())
			case ch := <-cs.exited:
				return fmt.Errorf("wait: %s: %w", c.what, ch.exitError())
			case <-tick.C:
			}
		}
	}
	return nil
}

// get200 fetches url and reports why it did not answer 200.
func get200(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
