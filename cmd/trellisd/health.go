package main

import (
	"context"
	"log/slog"

	"github.com/trellis-mesh/trellis/internal/analyze"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// followHealth re-publishes the config in force whenever a workload's
// probe result flips (internal/health), so that proxies stop or resume
// sending it traffic. Signals are latest-wins: a burst of flips costs one
// publish. It returns nil when ctx is done.
func (p *pipeline) followHealth(ctx context.Context, changed <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			p.republish()
		}
	}
}

// analyzeLogger logs what `trellis analyze` would report for each new
// config set, under component=analyze: errors at error level, warnings at
// warn level.
func analyzeLogger(log *slog.Logger) func(*snapshot.Snapshot) {
	log = log.With("component", "analyze")
	return func(s *snapshot.Snapshot) {
		for _, f := range analyze.Analyze(s.Config, s.Registry, analyze.Options{DomainSuffix: s.Mesh.DomainSuffix}) {
			level := slog.LevelWarn
			if f.Severity == analyze.Error {
				level = slog.LevelError
			}
			log.Log(context.Background(), level, f.Message, "code", string(f.Code), "resource", f.Resource.String(),
				"origin", f.Origin.String(), "field", f.Field, "fix", f.Fix)
		}
	}
}
