package runner

import (
	"context"
	"log/slog"
	"time"
)

// actionLog logs what becomes of one action, each record with the action's
// name, cmd and fingerprint. It hands records to the handler itself:
// slog.Logger walks the stack for the caller of every record (for
// AddSource, which amx does not use) and With copies the handler for every
// process, which on the spawn path cost as much as formatting the lines.
type actionLog struct {
	h     slog.Handler
	attrs [3]slog.Attr
}

func newActionLog(l *slog.Logger, a *Action) *actionLog {
	return &actionLog{h: l.Handler(), attrs: [3]slog.Attr{
		slog.String("name", a.Name), slog.String("cmd", a.Cmd), slog.String("fingerprint", a.Fingerprint),
	}}
}

func (l *actionLog) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !l.h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(l.attrs[:]...)
	r.Add(args...)
	_ = l.h.Handle(ctx, r)
}

func (l *actionLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args...) }
func (l *actionLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args...) }
func (l *actionLog) Warn(msg string, args ...any)  { l.log(slog.LevelWarn, msg, args...) }
func (l *actionLog) Error(msg string, args ...any) { l.log(slog.LevelError, msg, args...) }
