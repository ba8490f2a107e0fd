package engine

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
)

func TestMemory(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	m := &memory{window: time.Hour, max: 1000}
	k := Occurrence{Key: "k"}
	if !m.claim(k, t0) || m.claim(k, t0) {
		t.Fatal("a claimed occurrence must be a duplicate while it runs")
	}
	m.settle(k, true, t0)
	if m.claim(k, t0.Add(59*time.Minute)) {
		t.Error("a success within the window ran again")
	}
	if !m.claim(k, t0.Add(61*time.Minute)) {
		t.Error("a success past the window is still remembered")
	}
	m.settle(k, false, t0)
	if !m.claim(k, t0) {
		t.Error("a failure must run again on retry")
	}
	if !m.claim(Occurrence{}, t0) || !m.claim(Occurrence{}, t0) {
		t.Error("an empty occurrence is never a duplicate")
	}

	once := alertOccurrence(&Alert{Fingerprint: "fp", StartsAt: t0, Status: StatusFiring}, "cmd", true)
	cleanup := alertOccurrence(&Alert{Fingerprint: "fp", StartsAt: t0, Status: StatusResolved}, "cmd", true)
	for _, k := range []Occurrence{once, cleanup} {
		m.claim(k, t0)
		m.settle(k, true, t0)
	}
	if m.claim(once, t0.Add(100*time.Hour)) || m.claim(cleanup, t0.Add(100*time.Hour)) {
		t.Error("a once occurrence ran again after the window")
	}
	m.resolved([]string{"fp"})
	if !m.claim(once, t0) {
		t.Error("the firing once occurrence is still kept after its alert resolved")
	}
	if m.claim(cleanup, t0) {
		t.Error("the resolved once occurrence was forgotten: a re-sent resolve would run it again")
	}

	off := &memory{max: 1000}
	off.claim(k, t0)
	off.settle(k, true, t0)
	if !off.claim(k, t0) || !off.claim(k, t0) {
		t.Error("with a zero window nothing but once is remembered")
	}

	small := &memory{window: time.Hour, max: 3}
	for i := range 50 {
		k := Occurrence{Key: fmt.Sprint("k", i)}
		small.claim(k, t0)
		small.settle(k, true, t0)
	}
	if n, q := len(small.entries), len(small.queue); n > 3 || q > 2*3+64 {
		t.Errorf("%d entries and %d queued, want at most 3 and a bounded queue", n, q)
	}
	if small.claim(Occurrence{Key: "k49"}, t0) || !small.claim(Occurrence{Key: "k0"}, t0) {
		t.Error("the newest must be kept and the oldest dropped")
	}
}

// retryEngine runs a command that succeeds and one that fails on its first
// run only; each counts its runs in dir.
func retryEngine(t *testing.T, dir string, window time.Duration, process rules.Process) *Engine {
	t.Helper()
	flaky := `echo x >> "$0/flaky"; [ "$(wc -l < "$0/flaky")" -gt 1 ]`
	set := &rules.Set{Commands: []*rules.Command{
		{Name: "commands[0]", Cmd: "sh", Args: []string{"-c", `echo x >> "$0/steady"`, dir}, Process: process},
		{Name: "commands[1]", Cmd: "sh", Args: []string{"-c", flaky, dir}, Process: process},
	}}
	e := New(Options{Config: &rules.Config{MaxBodyBytes: 1 << 20, Set: set, DedupeWindow: window}, Rules: compile(t, set),
		Log: slog.New(slog.DiscardHandler)})
	return e
}

func runs(t *testing.T, dir, name string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.Count(string(b), "x")
}

// TestRetrySafety: Alertmanager re-sends a notification that failed in
// part; what succeeded is not run again, what failed is. A group that
// changed is a new notification and runs again.
func TestRetrySafety(t *testing.T) {
	dir := t.TempDir()
	e := retryEngine(t, dir, time.Hour, notify)
	h := e.Handler()
	two := `{"status":"firing","alerts":[{"fingerprint":"f1","startsAt":"2026-11-25T10:00:00Z","labels":{"a":"1"}}]}`
	for i, want := range []struct{ code, steady, flaky int }{{500, 1, 1}, {200, 1, 2}, {200, 1, 2}} {
		if code, answer := do(t, h, "POST", "/", two); code != want.code {
			t.Errorf("try %d: %d %q, want %d", i+1, code, answer, want.code)
		}
		if s, f := runs(t, dir, "steady"), runs(t, dir, "flaky"); s != want.steady || f != want.flaky {
			t.Errorf("try %d: runs %d and %d, want %d and %d", i+1, s, f, want.steady, want.flaky)
		}
	}
	_, metrics := do(t, h, "GET", "/metrics", "")
	if !hasLine(metrics, `am_executor_skipped_total{reason="duplicate"} 3`) {
		t.Error("the duplicates are not counted")
	}
	// A new alert joins the group: the classic commands run for it.
	grown := strings.Replace(two, `]}`, `,{"fingerprint":"f2","startsAt":"2026-11-25T10:05:00Z","labels":{"a":"2"}}]}`, 1)
	if code, _ := do(t, h, "POST", "/", grown); code != 200 || runs(t, dir, "steady") != 2 {
		t.Errorf("a changed group: %d, %d runs", code, runs(t, dir, "steady"))
	}

	// dedupe_window: 0 runs every copy, as the old executor did.
	dir0 := t.TempDir()
	h0 := retryEngine(t, dir0, 0, notify).Handler()
	for range 3 {
		do(t, h0, "POST", "/", two)
	}
	if s := runs(t, dir0, "steady"); s != 3 {
		t.Errorf("without a window: %d runs, want 3", s)
	}
}

// TestOnce: once: true runs a route at most once per alert occurrence,
// whatever notifications carry it and however late; a new occurrence (a
// new startsAt, after a resolve) runs again.
func TestOnce(t *testing.T) {
	dir := t.TempDir()
	set := &rules.Set{LuaTimeout: rules.DefaultLuaTimeout, Routes: []*rules.Route{{Name: "r", ScriptName: "r.lua",
		Process: rules.Process{NotifyOnFailure: true, Once: true},
		Source:  fmt.Sprintf(`if alert.status == "firing" then exec("sh", "-c", 'echo x >> "$0/$1"', %q, alert.fingerprint) end`, dir)}}}
	// No window: only once remembers.
	e := New(Options{Config: &rules.Config{MaxBodyBytes: 1 << 20, Set: set}, Rules: compile(t, set), Log: slog.New(slog.DiscardHandler)})
	h := e.Handler()
	alert := func(fp, status, startsAt string) string {
		return fmt.Sprintf(`{"fingerprint":%q,"status":%q,"startsAt":%q,"labels":{"fp":%[1]q}}`, fp, status, startsAt)
	}
	notification := func(status string, alerts ...string) string {
		return fmt.Sprintf(`{"status":%q,"alerts":[%s]}`, status, strings.Join(alerts, ","))
	}
	first := alert("f1", "firing", "2026-11-25T10:00:00Z")
	for _, body := range []string{
		notification("firing", first),
		notification("firing", first), // repeat_interval
		notification("firing", first, alert("f2", "firing", "2026-11-25T10:01:00Z")), // the group grew
	} {
		if code, answer := do(t, h, "POST", "/", body); code != 200 {
			t.Fatalf("%d %q", code, answer)
		}
	}
	if r1, r2 := runs(t, dir, "f1"), runs(t, dir, "f2"); r1 != 1 || r2 != 1 {
		t.Errorf("runs for f1 %d, f2 %d; want 1 each", r1, r2)
	}
	do(t, h, "POST", "/", notification("resolved", alert("f1", "resolved", "2026-11-25T10:00:00Z")))
	do(t, h, "POST", "/", notification("firing", alert("f1", "firing", "2026-11-25T11:00:00Z")))
	if r1 := runs(t, dir, "f1"); r1 != 2 {
		t.Errorf("a new occurrence of f1: %d runs, want 2", r1)
	}
}
