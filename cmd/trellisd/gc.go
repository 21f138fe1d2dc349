package main

import (
	"log/slog"

	"github.com/trellis-mesh/trellis/internal/memlimit"
)

// gcPolicy applies --memory-limit and --gc-percent unless GOMEMLIMIT and
// GOGC, which the runtime has already read, say otherwise, and logs what is
// in force.
func gcPolicy(f flags, getenv func(string) string, log *slog.Logger) {
	limit, limitFrom := memlimit.Apply(f.memoryLimit, getenv)
	pct, pctFrom := memlimit.ApplyGCPercent(f.gcPercent, getenv)
	log.Info("GC policy", "memory_limit", limit, "memory_limit_from", limitFrom, "gc_percent", pct, "gc_percent_from", pctFrom)
}
