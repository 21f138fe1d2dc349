package xdsserver

import (
	"context"
	"fmt"
	"log/slog"

	cplog "github.com/envoyproxy/go-control-plane/pkg/log"
)

// cpLogger adapts go-control-plane's printf logger to slog. The library logs
// every watch it opens at info level, which is noise for an operator, so its
// Info becomes Debug here; its warnings (for example an ADS request held back
// because names do not match) stay warnings.
type cpLogger struct{ l *slog.Logger }

var _ cplog.Logger = cpLogger{}

func (c cpLogger) Debugf(format string, args ...any) { c.log(slog.LevelDebug, format, args) }
func (c cpLogger) Infof(format string, args ...any)  { c.log(slog.LevelDebug, format, args) }
func (c cpLogger) Warnf(format string, args ...any)  { c.log(slog.LevelWarn, format, args) }
func (c cpLogger) Errorf(format string, args ...any) { c.log(slog.LevelError, format, args) }

func (c cpLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !c.l.Enabled(ctx, level) {
		return
	}
	c.l.Log(ctx, level, fmt.Sprintf(format, args...))
}
