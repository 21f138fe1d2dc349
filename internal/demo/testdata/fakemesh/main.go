// Command fakemesh stands in for trellisd and trellis-proxy in the demo
// orchestrator's tests, so that they exercise process handling without the
// real control plane and proxy. Built as "trellisd" it serves /ready on the
// monitoring address and exits with status 3 once a file named "exit-now"
// appears in its --config-dir. Built as "trellis-proxy" it serves readiness
// (never ready for the workload named by FAKEMESH_NEVER_READY), the gateway
// port forwarding to productpage, and a forward HTTP proxy mapping Bookinfo
// names to the demo's app addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch filepath.Base(os.Args[0]) {
	case "trellisd":
		err = controlPlane(ctx, os.Args[1:])
	case "trellis-proxy":
		err = proxy(ctx, os.Args[1:])
	default:
		err = fmt.Errorf("run as trellisd or trellis-proxy, not %s", os.Args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakemesh:", err)
		os.Exit(1)
	}
}

func controlPlane(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trellisd", flag.ContinueOnError)
	dir := fs.String("config-dir", "", "")
	fs.String("data-dir", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	xds, err := net.Listen("tcp", "127.0.0.1:15010")
	if err != nil {
		return err
	}
	defer xds.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(http.ResponseWriter, *http.Request) {})
	stopServe, err := serve("127.0.0.1:15014", mux)
	if err != nil {
		return err
	}
	defer stopServe()
	fmt.Println("fake trellisd ready")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(*dir, "exit-now")); err == nil {
				fmt.Println("fake trellisd: exit-now")
				os.Exit(3)
			}
		}
	}
}

var apps = map[string][]string{
	"productpage": {"127.0.20.1:9080"},
	"details":     {"127.0.20.2:9080"},
	"reviews":     {"127.0.20.3:9080", "127.0.20.4:9080", "127.0.20.5:9080"},
	"ratings":     {"127.0.20.6:9080"},
}

func proxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trellis-proxy", flag.ContinueOnError)
	fs.String("xds", "", "")
	fs.String("data-dir", "", "")
	workload := fs.String("workload", "", "")
	address := fs.String("address", "", "")
	gateway := fs.Bool("gateway", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ready := http.NewServeMux()
	ready.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if *workload == os.Getenv("FAKEMESH_NEVER_READY") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	stopReady, err := serve(net.JoinHostPort(*address, "15021"), ready)
	if err != nil {
		return err
	}
	defer stopReady()

	var next atomic.Uint32
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		host := "productpage"
		if !*gateway {
			host, _, _ = strings.Cut(r.In.Host, ":")
		}
		backends := apps[host]
		if len(backends) == 0 {
			backends = []string{"127.0.0.1:1"} // nothing there: 502
		}
		r.Out.URL.Scheme = "http"
		r.Out.URL.Host = backends[int(next.Add(1))%len(backends)]
		r.SetXForwarded()
	}}
	port := "15080"
	if *gateway {
		port = "8080"
	}
	stopData, err := serve(net.JoinHostPort(*address, port), rp)
	if err != nil {
		return err
	}
	defer stopData()
	fmt.Println("fake proxy ready:", *workload)
	<-ctx.Done()
	return nil
}

// serve answers on addr until the returned function is called.
func serve(addr string, h http.Handler) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "fakemesh: serve:", err)
		}
	}, nil
}
