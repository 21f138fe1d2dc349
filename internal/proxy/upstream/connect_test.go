package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/proxy/runtime"
)

// TestBreakersConnect: tcp_proxy connections share max_connections with
// HTTP/1.1 requests and never queue; a freed slot goes to a waiting request.
func TestBreakersConnect(t *testing.T) {
	var b Breakers
	b.set(runtime.CircuitBreakers{MaxConnections: 1})
	release, ok := b.Connect()
	if !ok {
		t.Fatal("first Connect refused")
	}
	if _, ok := b.Connect(); ok {
		t.Fatal("second Connect admitted beyond max_connections 1")
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rel, err := b.Acquire(ctx, true)
		if err == nil {
			rel()
		}
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, pending := b.Active(); pending == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release() // hands the slot to the waiting HTTP/1.1 request
	if err := <-got; err != nil {
		t.Fatalf("waiting request: %v", err)
	}
	if rq, conns, pending := b.Active(); rq != 0 || conns != 0 || pending != 0 {
		t.Errorf("Active = %d, %d, %d; want all 0", rq, conns, pending)
	}
}

// TestOutlierConnectSuccessFinal: a tcp_proxy connection established
// resets the consecutive counters in both modes.
func TestOutlierConnectSuccessFinal(t *testing.T) {
	fail := Outcome{Local: LocalConnectFailure}
	tests := []struct {
		name  string
		split bool
	}{{"without split", false}, {"with split", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := outlierCluster("a", "b")
			rc.Outlier.SplitExternalLocalOriginErrors = tc.split
			c := NewSet(Options{Clock: (&fakeClock{now: time.Unix(1, 0)}).Now}).Update(map[string]*runtime.Cluster{"c": rc})["c"]
			for _, o := range append(repeat(fail, 4), Outcome{Local: LocalSuccessFinal}, fail, fail, fail, fail) {
				c.Report("a:80", o)
			}
			if c.Ejected()["a:80"] {
				t.Error("ejected after 4 failures, a success and 4 failures; want the success to reset the count")
			}
			c.Report("a:80", fail)
			if !c.Ejected()["a:80"] {
				t.Error("not ejected after 5 consecutive failures")
			}
		})
	}
}
