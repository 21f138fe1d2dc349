package main

import (
	"context"
	"log/slog"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/configdir"
	"github.com/trellis-mesh/trellis/internal/gatewayapi"
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
			publish(withGatewayAPI(u.Set, log))
		case err := <-errc:
			return err
		}
	}
}

// withGatewayAPI adds the Istio Gateways and VirtualServices converted from
// the set's Kubernetes Gateway API resources (internal/gatewayapi), logging
// each problem a controller would write into route or gateway status.
func withGatewayAPI(set *config.Set, log *slog.Logger) *config.Set {
	out, problems := gatewayapi.Apply(set, gatewayapi.Options{})
	for _, p := range problems {
		log.Warn("gateway api: "+p.Msg, "component", "gatewayapi", "file", p.File, "line", p.Line, "resource", p.Resource, "field", p.Field)
	}
	return out
}
