package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTrafficManagement measures, through real proxies and trellisd, what a
// user of issue 3's DestinationRule and VirtualService features would: the
// split of a weighted route, stickiness of consistent hashing, and mirrored
// traffic. Each subtest writes its config, waits until the mesh behaves
// accordingly (bounded polling), then measures.
func TestTrafficManagement(t *testing.T) {
	m := startMesh(t, meshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := m.egressClient(t)
	url := echoURL(portHTTP, "/tm")

	t.Run("90/10 split within 3 points over 2000 requests", func(t *testing.T) {
		writeFile(t, m.dir, "vs-echo.yaml", weightedVS(90, 10))
		t.Cleanup(func() { removeFile(t, m.dir, "vs-echo.yaml") })
		waitFor(t, "the 90/10 route", readyTimeout, func() error {
			// The split is in force once v2 answers at all and v1 mostly.
			n := map[string]int{}
			for range 50 {
				r, err := getEcho(ctx, c, url)
				if err != nil {
					return err
				}
				n[r.Name]++
			}
			if n["echo-v2"] == 0 || n["echo-v1"] < 30 {
				return fmt.Errorf("split not yet in force: %v", n)
			}
			return nil
		}, m.all()...)
		const total = 2000
		n := map[string]int{}
		for range total {
			r, err := getEcho(ctx, c, url)
			if err != nil {
				t.Fatal(err)
			}
			n[r.Name]++
		}
		share := float64(n["echo-v1"]) / total * 100
		if math.Abs(share-90) > 3 {
			t.Errorf("echo-v1 got %.1f%% (%v), want 90±3", share, n)
		}
	})

	t.Run("consistent hashing keeps a key on one endpoint", func(t *testing.T) {
		writeFile(t, m.dir, "dr-echo.yaml", hashDR)
		t.Cleanup(func() { writeFile(t, m.dir, "dr-echo.yaml", destinationRuleYAML) })
		waitFor(t, "sticky routing by x-user", readyTimeout, func() error {
			used := map[string]bool{}
			for k := range 8 {
				seen := map[string]bool{}
				for range 6 {
					r, err := getEchoHeader(ctx, c, url, "X-User", fmt.Sprintf("user-%d", k))
					if err != nil {
						return err
					}
					seen[r.Name] = true
					used[r.Name] = true
				}
				if len(seen) != 1 {
					return fmt.Errorf("user-%d answered by %v", k, seen)
				}
			}
			if len(used) < 2 {
				return fmt.Errorf("8 keys all on %v", used)
			}
			return nil
		}, m.all()...)
	})

	t.Run("mirrored traffic reaches the mirror, the caller sees only the primary", func(t *testing.T) {
		writeFile(t, m.dir, "vs-echo.yaml", mirrorVS)
		t.Cleanup(func() { removeFile(t, m.dir, "vs-echo.yaml") })
		v2 := m.apps["echo-v2"]
		waitFor(t, "mirror to v2", readyTimeout, func() error {
			before := v2.httpRequests.Load()
			for range 20 {
				r, err := getEcho(ctx, c, url)
				if err != nil {
					return err
				}
				if r.Name != "echo-v1" {
					return fmt.Errorf("answered by %s, want echo-v1 only", r.Name)
				}
			}
			// Copies are asynchronous: give them a bounded moment.
			deadline := time.Now().Add(2 * time.Second)
			for v2.httpRequests.Load()-before < 20 && time.Now().Before(deadline) {
				time.Sleep(pollInterval) // polling, bounded
			}
			if got := v2.httpRequests.Load() - before; got < 20 {
				return fmt.Errorf("mirror saw %d of 20 copies", got)
			}
			return nil
		}, m.all()...)
	})
}

func getEchoHeader(ctx context.Context, c *http.Client, url, k, v string) (echoReply, error) {
	var r echoReply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, err
	}
	req.Header.Set(k, v)
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}

func removeFile(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
		t.Error(err)
	}
}

func weightedVS(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - %[1]s
  http:
  - route:
    - destination: {host: %[1]s, subset: v1}
      weight: %[2]d
    - destination: {host: %[1]s, subset: v2}
      weight: %[3]d
`, echoHost, w1, w2)
}

var mirrorVS = fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: default
spec:
  hosts:
  - %[1]s
  http:
  - route:
    - destination: {host: %[1]s, subset: v1}
    mirror: {host: %[1]s, subset: v2}
    mirrorPercentage: {value: 100}
`, echoHost)

var hashDR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
  namespace: default
spec:
  host: ` + echoHost + `
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`
