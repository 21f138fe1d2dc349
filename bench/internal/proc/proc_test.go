package proc

import (
	"context"
	"testing"
	"time"
)

func TestLogged(t *testing.T) {
	p, err := Start(Spec{Name: "echo", Path: "/bin/sh", Args: []string{"-c", "echo releasing start-up pages"}, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("sh did not exit")
	}
	if !p.Logged("start-up pages") {
		t.Errorf("Logged missed a line the process wrote: %q", p.LogTail(100))
	}
	if p.Logged("never written") {
		t.Error("Logged found a line the process never wrote")
	}
}
