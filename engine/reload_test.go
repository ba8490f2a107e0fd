package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner/runnertest"
)

// reloadable returns an Engine whose configuration is the file dir/amx.yml,
// written with config, so that Reload reads it again.
func reloadable(t testing.TB, dir, config string) (*Engine, *syncBuffer) {
	t.Helper()
	file := writeTestFile(t, dir, "amx.yml", config)
	src := rules.Source{File: file}
	cfg, err := rules.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(syncBuffer)
	log := slog.New(slog.NewTextHandler(logs, nil))
	r, err := Compile(cfg.Set, log)
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Config: cfg, Rules: r, Log: log, Source: src})
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e.Shutdown(ctx)
	})
	return e, logs
}

func writeTestFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a log buffer that handlers on other goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// versioned is a configuration whose one route, a script file, skips with
// its version, so that a Plan tells which rules decided it.
const versioned = "routes:\n  - name: r\n    script: r.lua\n"

// ruleVersion decides a one-alert notification under the rules in force and
// returns the reason the route skipped with.
func ruleVersion(t *testing.T, e *Engine) string {
	t.Helper()
	m, err := Decode([]byte(firing))
	if err != nil {
		t.Fatal(err)
	}
	p := Decide(t.Context(), e.rules.Load(), m, nil)
	if len(p.Skips) != 1 || p.Skips[0].Reason != SkipLua {
		t.Fatalf("plan: %+v", p)
	}
	return p.Skips[0].Detail
}

func metric(t *testing.T, e *Engine, name string) string {
	t.Helper()
	_, text := do(t, e.Handler(), "GET", "/metrics", "")
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return ""
}

// TestReloadBrokenKeepsRules breaks the configuration each way an operator
// can, and checks that the rules in force stay fully in force, the error
// names file:line, the metrics say so, and the fix reloads normally.
func TestReloadBrokenKeepsRules(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "r.lua", `skip("v1")`)
	e, logs := reloadable(t, dir, versioned)
	config := filepath.Join(dir, "amx.yml")
	script := filepath.Join(dir, "r.lua")
	if got := ruleVersion(t, e); got != "v1" {
		t.Fatalf("version %q", got)
	}
	if got := metric(t, e, "am_executor_config_last_reload_successful"); got != "1" {
		t.Errorf("last_reload_successful at start = %s", got)
	}
	for i, tc := range []struct {
		name, config, script string
		want                 string // in the error
	}{
		{"YAML syntax", "routes:\n  - name: r\n    script: [r.lua\n", `skip("v2")`, config + ":2: did not find expected"},
		{"unknown field", versioned + "    scirpt: x\n", `skip("v2")`, config + `:4:5: routes[0].scirpt: unknown field (did you mean "script"?)`},
		{"bad signal", versioned + "    resolved_signal: SIGNOPE\n", `skip("v2")`, config + ":4:22: routes[0].resolved_signal: "},
		{"missing script", strings.Replace(versioned, "r.lua", "gone.lua", 1), `skip("v2")`, config + ":3:13: routes[0].script: open " + filepath.Join(dir, "gone.lua")},
		{"Lua syntax", versioned, "skip(\"v2\"\nif then", script + ":2: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeTestFile(t, dir, "amx.yml", tc.config)
			writeTestFile(t, dir, "r.lua", tc.script)
			hash := metric(t, e, "am_executor_config_hash")
			stamp := metric(t, e, "am_executor_config_last_reload_success_timestamp_seconds")
			err := e.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload() = %v, want an error with %q", err, tc.want)
			}
			if got := ruleVersion(t, e); got != fmt.Sprint("v", i+1) {
				t.Errorf("after a failed reload the rules are %q, want the previous ones", got)
			}
			if got := metric(t, e, "am_executor_config_last_reload_successful"); got != "0" {
				t.Errorf("last_reload_successful = %s, want 0", got)
			}
			if got := metric(t, e, "am_executor_config_hash"); got != hash {
				t.Errorf("config_hash changed on a failed reload: %s, was %s", got, hash)
			}
			if !strings.Contains(logs.String(), "reload failed") {
				t.Error("the failure was not logged")
			}

			// The fix.
			writeTestFile(t, dir, "amx.yml", versioned)
			writeTestFile(t, dir, "r.lua", fmt.Sprintf("skip(%q)", fmt.Sprint("v", i+2)))
			if err := e.Reload(); err != nil {
				t.Fatal(err)
			}
			if got, want := ruleVersion(t, e), fmt.Sprint("v", i+2); got != want {
				t.Errorf("after the fix the rules are %q, want %q", got, want)
			}
			if got := metric(t, e, "am_executor_config_last_reload_successful"); got != "1" {
				t.Errorf("last_reload_successful after the fix = %s", got)
			}
			if got := metric(t, e, "am_executor_config_hash"); got == hash {
				t.Error("config_hash did not change with the script")
			}
			if got := metric(t, e, "am_executor_config_last_reload_success_timestamp_seconds"); got < stamp {
				t.Errorf("success timestamp went back: %s < %s", got, stamp)
			}
		})
	}
}

// TestReloadEndpoint is POST /-/reload: 200 when the new rules are in force,
// 500 with the errors when the old ones stay.
func TestReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "r.lua", `skip("v1")`)
	e, _ := reloadable(t, dir, versioned)
	h := e.Handler()
	if code, _ := do(t, h, "GET", "/-/reload", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}
	writeTestFile(t, dir, "r.lua", "skip(")
	code, answer := do(t, h, "POST", "/-/reload", "")
	if want := "failed to reload config: " + filepath.Join(dir, "r.lua") + ":1: "; code != 500 || !strings.HasPrefix(answer, want) {
		t.Errorf("broken: %d %q, want 500 %q...", code, answer, want)
	}
	writeTestFile(t, dir, "r.lua", `skip("v2")`)
	if code, answer := do(t, h, "POST", "/-/reload", ""); code != 200 || answer != "OK\n" {
		t.Errorf("fixed: %d %q", code, answer)
	}
	if got := ruleVersion(t, e); got != "v2" {
		t.Errorf("rules %q after /-/reload, want v2", got)
	}
}

// TestReloadKeepsProcesses: a process started under old rules keeps its
// max accounting across a reload that only edits its route, and still gets
// its route's resolved_signal when its alert resolves after the route was
// removed altogether.
func TestReloadKeepsProcesses(t *testing.T) {
	dir := t.TempDir()
	route := func(comment string) string {
		return fmt.Sprintf(`dedupe_window: 0
routes:
  - name: cleanup
    max: 1
    resolved_signal: SIGUSR1
    lua: |
      -- %s
      exec("sh", "-c", 'trap "echo usr1 > $0/signalled; exit 0" USR1; echo $$ > $0/pid; while :; do sleep 0.05; done', %q)
`, comment, dir)
	}
	e, _ := reloadable(t, dir, route("v1"))
	// Occurrences of one alert: a copy of the first would wait for its
	// answer rather than meet max.
	msg := func(status string, start int) *Message {
		m, err := Decode(fmt.Appendf(nil, `{"status":%q,"alerts":[{"status":%[1]q,"fingerprint":"f1","startsAt":"2026-01-01T00:00:0%dZ","labels":{"a":"b"}}]}`, status, start))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	answered := make(chan []string, 1)
	go func() {
		failures, _ := e.Handle(context.Background(), msg("firing", 1))
		answered <- failures
	}()
	pid := runnertest.ReadInt(t, filepath.Join(dir, "pid"))

	// The same route, edited: its live process still counts for max.
	writeTestFile(t, dir, "amx.yml", route("v2"))
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if failures, busy := e.Handle(t.Context(), msg("firing", 2)); len(failures) != 0 || busy != nil {
		t.Fatalf("second firing: %q %v", failures, busy)
	}
	if got := metric(t, e, `am_executor_skipped_total{reason="fingerover"}`); got != "1" {
		t.Errorf("skipped fingerover = %s, want 1: max was not kept across the reload", got)
	}

	// The route is gone; the resolve still signals what it started.
	writeTestFile(t, dir, "amx.yml", "routes:\n  - name: other\n    lua: skip('other')\n")
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	e.Handle(t.Context(), msg("resolved", 1))
	select {
	case failures := <-answered:
		if len(failures) != 0 {
			t.Errorf("the first notification failed: %q", failures)
		}
	case <-time.After(runnertest.Deadline):
		t.Fatalf("process %d was not signalled", pid)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "signalled")); err != nil || string(b) != "usr1\n" {
		t.Errorf("signal file: %q %v, want the route's SIGUSR1", b, err)
	}
}

// TestReloadUnderLoad fires notifications continuously over real HTTP while
// the configuration is rewritten and reloaded 100 times. Every notification
// is answered, and each by one version of the rules: its two alerts run
// through two routes, whose scripts fail with the version, and all four
// failures in an answer must name the same one.
func TestReloadUnderLoad(t *testing.T) {
	const reloads = 100
	dir := t.TempDir()
	config := func(v int) string {
		return fmt.Sprintf("routes:\n  - name: a\n    retry_on_script_error: true\n    lua: error('v%d', 0)\n  - name: b\n    retry_on_script_error: true\n    script: b.lua\n", v)
	}
	script := func(v int) string { return fmt.Sprintf("error('v%d', 0)", v) }
	writeTestFile(t, dir, "b.lua", script(0))
	e, _ := reloadable(t, dir, config(0))
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	body := `{"status":"firing","alerts":[
		{"status":"firing","fingerprint":"f1","labels":{"i":"1"}},
		{"status":"firing","fingerprint":"f2","labels":{"i":"2"}}]}`
	version := regexp.MustCompile(`v\d+`)
	var answered atomic.Int64
	seen := make([]atomic.Bool, reloads+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				resp.Body.Close()
				vs := version.FindAllString(b.String(), -1)
				if resp.StatusCode != 500 || len(vs) != 4 || vs[0] != vs[1] || vs[0] != vs[2] || vs[0] != vs[3] {
					errs <- fmt.Errorf("answer %d %q: want 500 with four failures of one version", resp.StatusCode, b.String())
					return
				}
				var v int
				fmt.Sscanf(vs[0], "v%d", &v)
				seen[v].Store(true)
				answered.Add(1)
			}
		})
	}
	for v := 1; v <= reloads; v++ {
		writeTestFile(t, dir, "b.lua", script(v))
		writeTestFile(t, dir, "amx.yml", config(v))
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
		// Each version answers before the next reload: every swap happens
		// under load, and every version of the rules is seen to answer.
		runnertest.Eventually(t, fmt.Sprintf("an answer by v%d", v), func() bool {
			return seen[v].Load() || len(errs) > 0
		})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d notifications answered during %d reloads", answered.Load(), reloads)
}

// TestReloadSettings: max_body_bytes and verbose change live; a new
// listen_address is only logged, as it needs a restart.
func TestReloadSettings(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "r.lua", `skip("v1")`)
	file := writeTestFile(t, dir, "amx.yml", "listen_address: 127.0.0.1:9001\nmax_body_bytes: 4096\n"+versioned)
	src := rules.Source{File: file}
	cfg, err := rules.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(syncBuffer)
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	e := New(Options{Config: cfg, Rules: compile(t, cfg.Set), Log: log, Source: src, Level: level})
	big := `{"status":"firing","alerts":[{}],"pad":"` + strings.Repeat("x", 5000) + `"}`
	if code, _ := do(t, e.Handler(), "POST", "/", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over max_body_bytes: %d", code)
	}

	writeTestFile(t, dir, "amx.yml", "listen_address: 127.0.0.1:9002\nmax_body_bytes: 8192\nverbose: true\n"+versioned)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, answer := do(t, e.Handler(), "POST", "/", big); code == http.StatusRequestEntityTooLarge {
		t.Errorf("max_body_bytes did not change: %d %q", code, answer)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after verbose: true", level.Level())
	}
	if want := `msg="listen_address changes only on restart; keeping the old one" listening=127.0.0.1:9001 configured=127.0.0.1:9002`; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs)
	}
}

// BenchmarkReloadBusyDirectory measures, through the real watcher, the time
// from saving a script (an editor's rename over it) to the new rules being
// in force, while another file in the same directory is written every 5 ms
// (a log beside the configuration). It reports the median and the 99th
// percentile: go test -run '^$' -bench ReloadBusy -benchtime 100x ./engine
func BenchmarkReloadBusyDirectory(b *testing.B) {
	dir := b.TempDir()
	save := func(v int) {
		tmp := writeTestFile(b, dir, ".r.lua.swp", fmt.Sprintf("skip('v%d')\n", v))
		if err := os.Rename(tmp, filepath.Join(dir, "r.lua")); err != nil {
			b.Fatal(err)
		}
	}
	save(0)
	e, _ := reloadable(b, dir, versioned)
	w, err := rules.NewWatcher(slog.New(slog.DiscardHandler), 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	e.watch(w)
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.Changes():
				e.Reload()
			}
		}
	})
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			os.WriteFile(filepath.Join(dir, "amx.log"), fmt.Appendf(nil, "line %d\n", i), 0o644)
			time.Sleep(5 * time.Millisecond)
		}
	})
	var took []time.Duration
	for i := range b.N {
		old := e.rules.Load()
		start := time.Now()
		save(i + 1)
		for e.rules.Load() == old {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("save %d: not in force after 10 s", i+1)
			}
			time.Sleep(100 * time.Microsecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
}

// TestScriptErrorRetry: a script's own error fails its route for that alert
// and is counted, but does not ask Alertmanager to retry, since a retry
// meets the same error, unless the route sets retry_on_script_error; a
// timeout still does, with notify_on_failure.
func TestScriptErrorRetry(t *testing.T) {
	for _, tc := range []struct {
		name, route, kind string
		code              int
	}{
		{"error", "lua: error('bug', 0)", "error", 200},
		{"error, retried", "retry_on_script_error: true\n    lua: error('bug', 0)", "error", 500},
		{"error, retried, not notified", "retry_on_script_error: true\n    notify_on_failure: false\n    lua: error('bug', 0)", "error", 200},
		{"timeout", "lua: while true do end", "timeout", 500},
		{"timeout, not notified", "notify_on_failure: false\n    lua: while true do end", "timeout", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := reloadable(t, t.TempDir(), "lua: {timeout: 50ms}\nroutes:\n  - name: r\n    "+tc.route+"\n")
			if code, body := do(t, e.Handler(), "POST", "/", firing); code != tc.code {
				t.Errorf("answer %d %q, want %d", code, body, tc.code)
			}
			if n := metric(t, e, fmt.Sprintf(`am_executor_lua_errors_total{kind=%q,route="r"}`, tc.kind)); n != "1" {
				t.Errorf("lua errors of kind %s counted: %s, want 1", tc.kind, n)
			}
		})
	}
}

// TestWaitDurationAnswer: with wait: <duration>, a command that fails
// within it makes the answer 500, and one still running then is answered
// 200 and keeps running.
func TestWaitDurationAnswer(t *testing.T) {
	dir := t.TempDir()
	e, _ := reloadable(t, dir, "commands:\n  - cmd: sleep\n    args: ['1000']\n    wait: 300ms\n")
	if code, body := do(t, e.Handler(), "POST", "/", firing); code != 200 {
		t.Errorf("a command running past its wait: %d %q", code, body)
	}
	if n := metric(t, e, "am_executor_processes_current"); n != "1" {
		t.Errorf("%s processes running, want the one still running", n)
	}
	e2, _ := reloadable(t, t.TempDir(), "commands:\n  - cmd: 'false'\n    wait: 1m\n")
	if code, body := do(t, e2.Handler(), "POST", "/", firing); code != 500 || !strings.Contains(body, "exit status 1") {
		t.Errorf("a command failing within its wait: %d %q", code, body)
	}
}

// TestLevel: verbose in the configuration turns debug on; without it a
// reload goes back to the level of --log.level, not to info.
func TestLevel(t *testing.T) {
	for _, tc := range []struct {
		base    slog.Level
		verbose bool
		want    slog.Level
	}{
		{slog.LevelWarn, false, slog.LevelWarn},
		{slog.LevelWarn, true, slog.LevelDebug},
		{slog.LevelDebug, false, slog.LevelDebug},
		{slog.LevelInfo, false, slog.LevelInfo},
	} {
		if got := level(tc.base, tc.verbose); got != tc.want {
			t.Errorf("level(%v, %v) = %v, want %v", tc.base, tc.verbose, got, tc.want)
		}
	}
}

// TestReloadKeepsState: a reload changes dedupe_window and state.retention
// at once, and state.path only on restart, with a warning.
func TestReloadKeepsState(t *testing.T) {
	dir := t.TempDir()
	e, logs := reloadable(t, dir, "commands:\n  - cmd: \"true\"\n")
	writeTestFile(t, dir, "amx.yml", "dedupe_window: 5m\nstate:\n  path: other.db\ncommands:\n  - cmd: \"true\"\n")
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(e.window.Load()); got != 5*time.Minute {
		t.Errorf("dedupe_window after the reload: %v", got)
	}
	if !strings.Contains(logs.String(), "state.path changes on restart only") || e.state.String() != "memory (lost on restart)" {
		t.Errorf("state %q; logs:\n%s", e.state.String(), logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "other.db")); err == nil {
		t.Error("a reload opened the new state file")
	}
}
