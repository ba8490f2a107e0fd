package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
)

// BenchmarkWebhook measures one notification (2 alerts) through the HTTP
// handler (read, decode, decide, answer) with nothing spawned, side by side:
// classic-only with a command that does not match, and one Lua route run for
// each alert that decides against running anything: by returning or by
// skip() (which is logged and counted) from a leading guard, which Run
// decides in Go, and by an if statement around exec after a local, for
// which the script runs in a Lua state. Compare the medians of -count 10:
// sub-benchmarks alternate, so drift on a noisy machine hits both. The
// request and the response writer are reused, as a server reuses its
// connection's buffers: httptest's new ones were a third of what an op
// allocated, and so a third of the collector's work.
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
		{"lua-vm", &rules.Set{LuaTimeout: rules.DefaultLuaTimeout, Routes: []*rules.Route{
			{Name: "page", ScriptName: "page.lua", Process: rules.DefaultProcess(),
				Source: "local severity = alert.labels.severity\n" +
					`if severity == "page" then exec("bin/page", alert.labels.instance) end`},
		}}},
		{"lua-skip", &rules.Set{LuaTimeout: rules.DefaultLuaTimeout, Routes: []*rules.Route{
			{Name: "skip", ScriptName: "skip.lua", Source: `skip("not today")`, Process: rules.DefaultProcess()},
		}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := &rules.Config{MaxBodyBytes: rules.DefaultMaxBodyBytes, Set: tc.set}
			h := New(Options{Config: cfg, Rules: compile(b, tc.set), Log: slog.New(slog.DiscardHandler)}).Handler()
			in := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/", in)
			w := &answerWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				if code := w.serve(h, req, in, body); code != http.StatusOK {
					b.Fatalf("answer %d", code)
				}
			}
		})
	}
}

// BenchmarkWebhookSpawn measures amx's own work for a notification that
// spawns /bin/true through a classic command, logs written to /dev/null
// included, and reports it as cpu-µs/op (from getrusage, the children's
// CPU apart): the figure the spawn path is cut by. Every op is a new
// occurrence (its startsAt changes), so none is deduplicated.
func BenchmarkWebhookSpawn(b *testing.B) {
	body, err := os.ReadFile("../examples/payloads/firing-diskfull-two-alerts.json")
	if err != nil {
		b.Fatal(err)
	}
	const at = "31.174993136Z" // both alerts' startsAt end so
	if bytes.Count(body, []byte(at)) != 2 {
		b.Fatalf("payload: want 2 startsAt ending %s", at)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	set := &rules.Set{Commands: []*rules.Command{{Name: "commands[0]", Cmd: "/bin/true", Process: rules.DefaultProcess()}}}
	cfg := &rules.Config{MaxBodyBytes: rules.DefaultMaxBodyBytes, Set: set}
	e := New(Options{Config: cfg, Rules: compile(b, set), Log: slog.New(slog.NewTextHandler(devNull, nil))})
	defer e.Shutdown(context.Background())
	h := e.Handler()
	var n atomic.Int64
	b.ReportAllocs()
	// 16 at a time, as the bench's load: a lone spawner's figure is
	// mostly threads going to sleep and waking up.
	b.SetParallelism(16)
	before := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		in := bytes.NewReader(body)
		req := httptest.NewRequest(http.MethodPost, "/", in)
		w := &answerWriter{header: http.Header{}}
		for pb.Next() {
			next := bytes.ReplaceAll(body, []byte(at), fmt.Appendf(nil, "31.%09dZ", n.Add(1)))
			if code := w.serve(h, req, in, next); code != http.StatusOK {
				b.Errorf("answer %d", code)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(n.Load()), "cpu-µs/op")
}

// cpuTime is the CPU this process has used, its children's apart.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// answerWriter is an http.ResponseWriter that keeps only the status code.
type answerWriter struct {
	header http.Header
	code   int
}

func (w *answerWriter) Header() http.Header         { return w.header }
func (w *answerWriter) WriteHeader(code int)        { w.code = code }
func (w *answerWriter) Write(p []byte) (int, error) { return len(p), nil }

// serve posts body to h through req, whose body reads from in, and returns
// the answer's status; req, in and w are reused from one request to the next.
func (w *answerWriter) serve(h http.Handler, req *http.Request, in *bytes.Reader, body []byte) int {
	in.Reset(body)
	req.Body = io.NopCloser(in)
	clear(w.header)
	w.code = 0
	h.ServeHTTP(w, req)
	return w.code
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
		if p := Decide(context.Background(), r, m, nil); len(p.Actions) != 3 {
			b.Fatalf("%d actions", len(p.Actions))
		}
	}
}

// BenchmarkReloadLatency measures what an operator waits for: from saving a
// script (an editor's rename over the old file) to the new rules answering
// webhooks, through the real inotify watcher, debounce, load, compile and
// swap. It polls every millisecond and reports the p50, p99 and max of the
// iterations; use -benchtime=200x for a p99 worth the name.
func BenchmarkReloadLatency(b *testing.B) {
	dir := b.TempDir()
	script := func(v int) {
		tmp := writeTestFile(b, dir, ".r.lua.swp", fmt.Sprintf("error('v%d', 0)", v))
		if err := os.Rename(tmp, filepath.Join(dir, "r.lua")); err != nil {
			b.Fatal(err)
		}
	}
	script(0)
	// The script's error is the answer, so it must ask for a retry.
	src := rules.Source{File: writeTestFile(b, dir, "amx.yml", versioned+"    retry_on_script_error: true\n")}
	cfg, err := rules.Load(src)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	url := "http://" + serve(b, ServeOptions{Options: Options{Config: cfg, Rules: compile(b, cfg.Set), Log: log, Source: src}, Watch: true}) + "/"
	answers := func(want string) bool {
		resp, err := http.Post(url, "application/json", strings.NewReader(firing))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.HasSuffix(string(body), ": "+want+"\n")
	}
	var took []time.Duration
	for i := 1; b.Loop(); i++ {
		start := time.Now()
		script(i)
		for end := start.Add(10 * time.Second); !answers(fmt.Sprint("v", i)); {
			if time.Now().After(end) {
				c, _ := os.ReadFile(filepath.Join(dir, "r.lua"))
				b.Fatalf("v%d never answered; r.lua: %s", i, c)
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}
