package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

type ctxKey struct{}

func newRequestContext(parent context.Context) *requestContext {
	return &requestContext{values: context.WithoutCancel(parent)}
}

func TestRequestContext(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancelParent()
	c := newRequestContext(parent)
	if c.Value(ctxKey{}) != "v" {
		t.Fatal("Value does not reach the connection's context")
	}
	if c.Err() != nil {
		t.Fatalf("Err = %v before cancel", c.Err())
	}
	ran := make(chan string, 4)
	stopA := c.AfterFunc(func() { ran <- "a" })
	stopB := c.AfterFunc(func() { ran <- "b" })
	child, cancelChild := context.WithCancel(c) // context's afterFuncer path
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	if !stopB() || stopB() {
		t.Fatal("stop: first call must report true, the second false")
	}
	done := c.Done()
	c.cancel(context.Canceled)
	c.cancel(context.DeadlineExceeded) // the first wins
	<-done
	<-child.Done()
	<-timed.Done()
	if got := <-ran; got != "a" {
		t.Fatalf("callback %q ran, want a", got)
	}
	if stopA() {
		t.Fatal("stop after the callback started reported true")
	}
	select {
	case got := <-ran:
		t.Fatalf("stopped callback %q ran", got)
	default:
	}
	if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
		t.Fatalf("Err %v, Cause %v; want Canceled", c.Err(), context.Cause(c))
	}
	if !errors.Is(child.Err(), context.Canceled) || !errors.Is(timed.Err(), context.Canceled) {
		t.Fatalf("children: %v, %v", child.Err(), timed.Err())
	}
	// After the end: Done is closed even if never asked for before,
	// AfterFunc runs at once, and the connection's context is untouched.
	late := newRequestContext(parent)
	late.cancel(context.Canceled)
	<-late.Done()
	late.AfterFunc(func() { ran <- "late" })
	if got := <-ran; got != "late" {
		t.Fatalf("callback %q, want late", got)
	}
	if parent.Err() != nil {
		t.Fatal("ending a request ended its connection's context")
	}
}

// TestRequestContextAfterFuncAllocs: the client's interrupt registration
// with the server's request context costs one allocation (the stop
// function), not context.AfterFunc's wrapper and a children map.
func TestRequestContextAfterFuncAllocs(t *testing.T) {
	f := func() {}
	cs := make([]requestContext, 101) // part of serverResponse in the server
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		c := &cs[i]
		i++
		c.values = context.Background()
		stop := afterFunc(c, f)
		stop()
		c.cancel(context.Canceled)
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per request context with one AfterFunc, want at most 1", allocs)
	}
}

// TestServerRequestContextLifetime: a request's context ends when its
// connection's context does, and, for whatever derived from it, when
// the handler returns.
func TestServerRequestContextLifetime(t *testing.T) {
	srv := NewServer(ServerOptions{})
	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	client, server := net.Pipe()
	defer client.Close()
	var kept context.Context
	var cancelKept context.CancelFunc
	defer func() { cancelKept() }()
	ended := make(chan error, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeConn(connCtx, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/first" {
				kept, cancelKept = context.WithCancel(r.Context()) // left running: the request's end ends it
				return
			}
			<-r.Context().Done()
			ended <- context.Cause(r.Context())
		}))
	}()
	br := bufio.NewReader(client)
	if _, err := io.WriteString(client, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-kept.Done() // the first request's end ended its child
	if _, err := io.WriteString(client, "GET /second HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go cancelConn()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("second request's context: %v, want canceled", err)
	}
	client.Close()
	<-served
}
