package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
)

// statusEngine runs a few notifications through three commands (one that
// writes, one that fails, one once only, run twice) and a route that
// skips, and returns the engine's handler.
func statusEngine(t *testing.T, auth *rules.Auth, st state.Store) (*Engine, http.Handler) {
	t.Helper()
	once := rules.DefaultProcess()
	once.Once = true
	set := &rules.Set{LuaTimeout: rules.DefaultLuaTimeout,
		Commands: []*rules.Command{
			{Name: "writes", Cmd: "sh", Args: []string{"-c", "echo to stdout; echo '<b>to stderr</b>' >&2"}},
			{Name: "fails", Cmd: "sh", Args: []string{"-c", "exit 3"}},
			{Name: "once", Cmd: "true", Process: once},
		},
		Routes: []*rules.Route{{Name: "quiet", ScriptName: "quiet.lua", Process: rules.DefaultProcess(),
			Source: `skip("not now")`}},
	}
	e := New(Options{Config: &rules.Config{MaxBodyBytes: 1 << 20, Set: set, Auth: auth}, Rules: compile(t, set),
		Log: slog.New(slog.DiscardHandler), State: st})
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	msg := `{"status":"firing","receiver":"r","groupKey":"{}:{alertname=\"Disk\"}","commonLabels":{"alertname":"Disk"},
	  "alerts":[{"status":"firing","fingerprint":"f1","startsAt":"2026-12-05T10:00:00Z",
	    "labels":{"alertname":"Disk","instance":"<script>alert(1)</script>","x":"\"><img src=x onerror=alert(2)>"}}]}`
	for range 2 {
		e.Handle(context.Background(), mustDecode(t, msg))
	}
	return e, e.Handler()
}

func mustDecode(t *testing.T, body string) *Message {
	t.Helper()
	m, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func getJSON(t *testing.T, h http.Handler, path string, out any) int {
	t.Helper()
	code, body := do(t, h, "GET", path, "")
	if code == 200 {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, body)
		}
	}
	return code
}

func TestRunsAPI(t *testing.T) {
	_, h := statusEngine(t, nil, nil)
	var all history.RunList
	if getJSON(t, h, "/api/v1/runs", &all); len(all.Runs) != 6 {
		t.Fatalf("%d runs, want 6 (writes, fails twice each; once, then its refusal): %+v", len(all.Runs), all.Runs)
	}
	if r := all.Runs[0]; r.Action != "once" || r.Outcome != history.Skipped || r.Reason != state.Once || r.Count != 1 {
		t.Errorf("the newest run is %+v, want the once refusal", r)
	}
	for _, tc := range []struct {
		query string
		code  int
		want  int // runs
		check func(history.Run) bool
	}{
		{"", 200, 6, nil},
		{"?outcome=failed", 200, 2, func(r history.Run) bool { return r.Action == "fails" && *r.ExitCode == 3 }},
		{"?outcome=succeeded&action=writes", 200, 2, func(r history.Run) bool { return *r.ExitCode == 0 && r.Pid > 0 }},
		{"?action=quiet", 200, 0, nil}, // skip() is counted, not listed
		{"?alertname=Disk&limit=3", 200, 3, func(r history.Run) bool { return r.Labels["x"] != "" && r.GroupKey != "" }},
		{"?alertname=Other", 200, 0, nil},
		{"?outcome=bogus", 400, 0, nil},
		{"?limit=0", 400, 0, nil},
		{"?limit=1001", 400, 0, nil},
		{"?limit=x", 400, 0, nil},
	} {
		var got history.RunList
		code := getJSON(t, h, "/api/v1/runs"+tc.query, &got)
		if code != tc.code || len(got.Runs) != tc.want {
			t.Errorf("%s: %d with %d runs, want %d with %d", tc.query, code, len(got.Runs), tc.code, tc.want)
		}
		for _, r := range got.Runs {
			if r.Output != "" || tc.check != nil && !tc.check(r) {
				t.Errorf("%s: run %+v", tc.query, r)
			}
		}
	}

	writes := all.Runs[len(all.Runs)-1]
	var one history.Run
	if code := getJSON(t, h, "/api/v1/runs/"+itoa(writes.ID), &one); code != 200 ||
		!strings.Contains(one.Output, "to stdout\n") || !strings.Contains(one.Output, "<b>to stderr</b>\n") {
		t.Errorf("run detail: %d %+v", code, one)
	}
	if !slices.Contains(one.Env, "AMX_ALERT_<n>_LABEL_instance") || !slices.Contains(one.Env, "AMX_STATUS") {
		t.Errorf("env names %q", one.Env)
	}
	for _, path := range []string{"/api/v1/runs/999", "/api/v1/runs/x", "/status/runs/999"} {
		if code, _ := do(t, h, "GET", path, ""); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/api/v1/runs", "/api/v1/processes", "/status"} {
		if code, _ := do(t, h, "POST", path, firing); code != 405 {
			t.Errorf("POST %s: %d, want 405 (nothing is triggered from the page)", path, code)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestStatusPage(t *testing.T) {
	_, h := statusEngine(t, nil, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	page := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	for _, want := range []string{
		`<td>writes</td><td>command</td><td class="num">2</td><td class="num">0</td>`,
		`<td>fails</td><td>command</td><td class="num">2</td><td class="num"><span class="bad">2</span></td>`,
		`<td>once</td><td>command</td><td class="num">1</td><td class="num">0</td><td class="num">0</td><td>once 1</td>`,
		`<td>quiet</td><td>route</td><td class="num">0</td><td class="num">0</td><td class="num">0</td><td>lua 2</td>`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`&#34;&gt;&lt;img src=x onerror=alert(2)&gt;`,
		`<td class="exit">exit 3</td>`,
		`Nothing runs.`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, bad := range []string{"<script>", "<img", "<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %s unescaped", bad)
		}
	}
	code, filtered := do(t, h, "GET", "/status?outcome=failed", "")
	if code != 200 || strings.Count(filtered, `class="failed"`) != 2 || strings.Contains(filtered, `class="succeeded"`) {
		t.Errorf("filtered page: %d\n%s", code, filtered)
	}
	var runs history.RunList
	getJSON(t, h, "/api/v1/runs?action=writes&limit=1", &runs)
	code, detail := do(t, h, "GET", "/status/runs/"+itoa(runs.Runs[0].ID), "")
	if code != 200 || !strings.Contains(detail, "&lt;b&gt;to stderr&lt;/b&gt;") || !strings.Contains(detail, "{}:{alertname=&#34;Disk&#34;}") {
		t.Errorf("run page: %d\n%s", code, detail)
	}
	if code, css := do(t, h, "GET", "/status/style.css", ""); code != 200 || !strings.Contains(css, "prefers-color-scheme: dark") {
		t.Errorf("style sheet: %d", code)
	}
}

// The page and its API show command output: they take the webhook's
// credentials, whatever protect_metrics says.
func TestStatusNeedsCredentials(t *testing.T) {
	_, h := statusEngine(t, &rules.Auth{Token: "t0ken"}, nil)
	for _, path := range []string{"/status", "/status/runs/1", "/api/v1/runs", "/api/v1/runs/1", "/api/v1/processes"} {
		req := httptest.NewRequest("GET", path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 || strings.Contains(rec.Body.String(), "Disk") {
			t.Errorf("%s without credentials: %d", path, rec.Code)
		}
		req.Header.Set("Authorization", "Bearer t0ken")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("%s with credentials: %d", path, rec.Code)
		}
	}
}

// With state.path, the history is in the state file: a restart keeps it.
func TestRunsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := state.OpenBolt(path, time.Second, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := statusEngine(t, nil, st)
	e.Shutdown(context.Background())
	st.Close()

	st, err = state.OpenBolt(path, time.Second, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e = New(Options{Config: &rules.Config{MaxBodyBytes: 1 << 20, Set: &rules.Set{}}, Rules: compile(t, &rules.Set{}),
		Log: slog.New(slog.DiscardHandler), State: st})
	defer e.Shutdown(context.Background())
	var runs history.RunList
	if getJSON(t, e.Handler(), "/api/v1/runs?outcome=failed", &runs); len(runs.Runs) != 2 {
		t.Errorf("%d failed runs after a restart, want 2", len(runs.Runs))
	}
}
