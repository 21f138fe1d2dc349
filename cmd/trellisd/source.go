package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/trellis-mesh/trellis/internal/config"
)

// watchConfig loads dir, publishes the valid resources, and reloads on every
// change until ctx is done. Each problem is logged with its file, line,
// resource and field. It returns nil on cancellation.
//
// This is the interim directory source, kept to one function with the
// signature the pipeline needs: internal/configdir (last-good semantics per
// resource) replaces its body when it lands.
func watchConfig(ctx context.Context, dir string, log *slog.Logger, publish func(*config.Set)) error {
	log = log.With("component", "configdir")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	load := func() {
		set, errs := config.LoadDir(dir)
		for _, e := range errs {
			log.Error("invalid config", "file", e.File, "line", e.Line, "resource", e.Resource, "field", e.Field,
				"err", e.Error())
		}
		log.Info("config loaded", "resources", set.Len(), "errors", len(errs))
		publish(set)
	}
	load()

	// Editors write a file in several steps; settle before reloading.
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			log.Debug("config dir changed", "event", ev.String())
			timer.Reset(settle)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("watch config dir", "err", err)
			timer.Reset(settle)
		case <-timer.C:
			load()
		}
	}
}
