package xdsserver

import (
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestCodecRoundTrip: small and large messages decode to what was encoded,
// also when the encoding arrives split in several buffers, and a large
// one is counted in flight until the transport frees it.
func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		counted bool
	}{{"small", 100, false}, {"large", 200 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newInflight(1<<20, time.Second)
			c := codec{inflight: f}
			want := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", Resources: []*anypb.Any{{TypeUrl: "t", Value: []byte(strings.Repeat("x", tc.size))}}}
			data, err := c.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.inFlight() > 0; got != tc.counted {
				t.Errorf("counted in flight = %v (%d bytes), want %v", got, f.inFlight(), tc.counted)
			}
			for _, split := range []bool{false, true} {
				in := data
				if split {
					b := data.Materialize()
					in = mem.BufferSlice{mem.SliceBuffer(b[:10]), mem.SliceBuffer(b[10:])}
				}
				got := &discoveryv3.DiscoveryResponse{}
				if err := c.Unmarshal(in, got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Errorf("split %v: round trip (-want +got):\n%s", split, diff)
				}
			}
			data.Free() // what the transport does once written
			if n := f.inFlight(); n != 0 {
				t.Errorf("after Free: %d bytes in flight, want 0", n)
			}
		})
	}
}

// TestInflightBoundsAndNeverStalls: past the limit an encoding waits for a
// release, and proceeds anyway after maxWait.
func TestInflightBoundsAndNeverStalls(t *testing.T) {
	f := newInflight(100, time.Hour)
	f.acquire(150) // under the limit when asked: taken
	done := make(chan struct{})
	go func() {
		f.acquire(10)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("acquired past the limit without a release")
	case <-time.After(20 * time.Millisecond): // only to let it block; not timing the code
	}
	f.release(150)
	<-done
	if n := f.inFlight(); n != 10 {
		t.Errorf("in flight %d, want 10", n)
	}

	g := newInflight(1, time.Millisecond)
	g.acquire(5)
	g.acquire(5) // nobody releases: proceeds after maxWait
	if n := g.inFlight(); n != 10 {
		t.Errorf("in flight %d, want 10", n)
	}
}

// TestInflightAdmitsInOrder: waiters are admitted in arrival order, as far
// as a release makes room.
func TestInflightAdmitsInOrder(t *testing.T) {
	f := newInflight(100, time.Hour)
	f.acquire(150)
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			f.mu.Lock()
			got := len(f.waiters)
			f.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters queued, want %d", got, n)
			}
			time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
		}
	}
	first, second := make(chan struct{}), make(chan struct{})
	go func() { f.acquire(60); close(first) }()
	queued(1)
	go func() { f.acquire(60); close(second) }()
	queued(2)
	f.release(100) // 50 in flight: room for the first only
	<-first
	if n := f.inFlight(); n != 110 {
		t.Errorf("in flight %d, want 110", n)
	}
	queued(1)
	f.release(110)
	<-second
	if n := f.inFlight(); n != 60 {
		t.Errorf("in flight %d, want 60", n)
	}
}

// FuzzCodecUnmarshal: arbitrary bytes never panic the decoder.
func FuzzCodecUnmarshal(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 'v', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &discoveryv3.DiscoveryRequest{})
	})
}
