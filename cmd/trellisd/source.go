package main

import (
	"context"
	"log/slog"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/configdir"
)

// watchConfig runs the directory source on dir and publishes every new set
// in force until ctx is done. The source logs each problem (file, line,
// resource, field) itself, under component=configdir, and keeps the last good
// version of a broken resource in force. It returns nil on cancellation.
func watchConfig(ctx context.Context, dir string, log *slog.Logger, publish func(*config.Set)) error {
	src := configdir.New(dir, log)
	updates := src.Subscribe() // latest wins: a slow publish never blocks the source
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	for {
		select {
		case u := <-updates:
			publish(u.Set)
		case err := <-errc:
			return err
		}
	}
}
