package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-mesh/trellis/internal/demo"
	"github.com/trellis-mesh/trellis/internal/demo/bookinfo"
)

// newDemoCmd is `trellis demo`: the Bookinfo mesh on this machine.
func newDemoCmd() *cobra.Command {
	var (
		dir          string
		readyTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the Bookinfo demo mesh locally (Ctrl-C stops everything)",
		Long: `Run the Bookinfo demo on this machine: trellisd, one trellis-proxy per workload and the
ingress gateway on 127.0.0.1:8080, on the loopback addresses of docs/local-mesh.md.
The configuration is written to DIR/config; edit it (or copy a file from DIR/extras into it)
while the demo runs and watch routing change. Logs go to DIR/logs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, demo.Options{
				Dir:          dir,
				Out:          cmd.OutOrStdout(),
				Logger:       slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
				ReadyTimeout: readyTimeout,
			})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".demo", "directory for the demo's config and logs")
	cmd.Flags().DurationVar(&readyTimeout, "ready-timeout", 90*time.Second, "how long start-up may take")
	cmd.AddCommand(newDemoAppCmd())
	return cmd
}

// newDemoAppCmd is the hidden `trellis demo app`: one Bookinfo app, as the
// demo runs it.
func newDemoAppCmd() *cobra.Command {
	var name, version, listen, proxy string
	cmd := &cobra.Command{
		Use:    "app --name NAME --listen ADDR [--version V] [--proxy URL]",
		Short:  "Run one Bookinfo app (used by trellis demo)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := bookinfo.Options{
				Name:    name,
				Version: version,
				Logger:  slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
			}
			if proxy != "" {
				u, err := url.Parse(proxy)
				if err != nil || u.Host == "" {
					return fmt.Errorf("demo app: --proxy %q: want a URL like http://127.0.10.1:15080", proxy)
				}
				o.Proxy = u
			}
			h, err := bookinfo.NewHandler(o)
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("demo app: %w", err)
			}
			o.Logger.Info("serving", "component", "bookinfo", "app", name+"-"+version, "addr", lis.Addr().String(), "proxy", proxy)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return bookinfo.Serve(ctx, lis, h)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "app: productpage, details, reviews or ratings")
	cmd.Flags().StringVar(&version, "version", "v1", "app version (reviews: v1, v2 or v3)")
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve on, e.g. 127.0.20.5:9080")
	cmd.Flags().StringVar(&proxy, "proxy", "", "HTTP proxy for outbound calls (default: HTTP_PROXY)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("listen")
	return cmd
}
