package tcpload

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSendToSink(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := Send(context.Background(), s.Addr(), 2, 4096, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Everything sent arrives once the connections are closed and drained.
	deadline := time.Now().Add(5 * time.Second)
	for s.Bytes() < sent && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // bounded polling, not synchronisation by sleep
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sent == 0 || s.Bytes() != sent {
		t.Errorf("sent %d, sink got %d; want equal and > 0", sent, s.Bytes())
	}
}
