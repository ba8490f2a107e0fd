package engine

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/amx-dev/amx/rules"
)

// BenchmarkWebhook measures one notification (2 alerts) through the HTTP
// handler (read, decode, decide, answer) with nothing spawned, side by side:
// classic-only with a command that does not match, and one Lua route run for
// each alert that decides against running anything, by returning or by
// skip() (which is logged and counted). Compare the medians of -count 10:
// sub-benchmarks alternate, so drift on a noisy machine hits both.
func BenchmarkWebhook(b *testing.B) {
	body, err := os.ReadFile("../examples/payloads/firing-diskfull-two-alerts.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  *rules.Set
	}{
		{"classic", &rules.Set{Commands: []*rules.Command{
			{Name: "commands[0]", Cmd: "true", Process: rules.Process{MatchLabels: map[string]string{"alertname": "Other"}}},
		}}},
		{"lua-return", &rules.Set{LuaTimeout: rules.DefaultLuaTimeout, Routes: []*rules.Route{
			{Name: "page", ScriptName: "page.lua", Process: rules.DefaultProcess(),
				Source: `if alert.labels.severity ~= "page" then return end exec("bin/page", alert.labels.instance)`},
		}}},
		{"lua-skip", &rules.Set{LuaTimeout: rules.DefaultLuaTimeout, Routes: []*rules.Route{
			{Name: "skip", ScriptName: "skip.lua", Source: `skip("not today")`, Process: rules.DefaultProcess()},
		}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := &rules.Config{MaxBodyBytes: rules.DefaultMaxBodyBytes, Set: tc.set}
			h := New(Options{Config: cfg, Rules: compile(b, tc.set), Log: slog.New(slog.DiscardHandler)}).Handler()
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
				if rec.Code != http.StatusOK {
					b.Fatalf("answer %d", rec.Code)
				}
			}
		})
	}
}

// BenchmarkDecide measures the pure decide step for the example config,
// including the AMX_* environment of a matching notification.
func BenchmarkDecide(b *testing.B) {
	r := loadRules(b, "../examples/executor.yml")
	body, err := os.ReadFile("../examples/payloads/firing-highlatency.json")
	if err != nil {
		b.Fatal(err)
	}
	m, err := Decode(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := Decide(context.Background(), r, m); len(p.Actions) != 3 {
			b.Fatalf("%d actions", len(p.Actions))
		}
	}
}
