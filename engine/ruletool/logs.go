package ruletool

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// ScriptLogs collects the lines scripts write with log(), so that amx
// explain can show each under the alert its script ran for. Give Logger to
// engine.Load.
type ScriptLogs struct {
	mu    sync.Mutex
	lines map[[2]string][]string // by route and fingerprint
}

// Logger is a logger that keeps the script lines and drops the rest.
func (l *ScriptLogs) Logger() *slog.Logger { return slog.New(l) }

// Enabled takes every level: log() writes at debug.
func (l *ScriptLogs) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps a record of log() (message "lua", with route, fingerprint,
// line and message).
func (l *ScriptLogs) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "lua" {
		return nil
	}
	var route, fingerprint, message string
	var line int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "route":
			route = a.Value.String()
		case "fingerprint":
			fingerprint = a.Value.String()
		case "line":
			line = a.Value.Int64()
		case "message":
			message = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = map[[2]string][]string{}
	}
	k := [2]string{route, fingerprint}
	l.lines[k] = append(l.lines[k], fmt.Sprintf("line %d: %s", line, message))
	return nil
}

// WithAttrs and WithGroup keep the handler as it is: log() gives its
// attributes with each record.
func (l *ScriptLogs) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup: see WithAttrs.
func (l *ScriptLogs) WithGroup(string) slog.Handler { return l }

// of returns the lines a route's script wrote for an alert.
func (l *ScriptLogs) of(route, fingerprint string) []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[[2]string{route, fingerprint}]
}
