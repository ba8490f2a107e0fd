package history

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/runner"
)

// run records one action that starts, writes out and ends as res says.
func run(h *History, r Run, out string, res runner.Result) uint64 {
	id, tail := h.Add(r)
	h.Started(id, 4242)
	tail.Write([]byte(out))
	res.Pid = 4242
	h.Ended(id, res)
	return id
}

func TestOutcomes(t *testing.T) {
	h := New()
	act := &runner.Action{CommonEnv: []string{"AMX_STATUS=firing", "AMX_ALERT_1_LABEL_job=x", "AMX_ALERT_12_LABEL_job=y"},
		Env: []string{"TARGET=db1"}}
	for _, tc := range []struct {
		name     string
		res      runner.Result
		want     string
		exitCode int // -1: none
		signal   string
	}{
		{"ok", runner.Result{ExitCode: 0}, Succeeded, 0, ""},
		{"exit 3", runner.Result{ExitCode: 3, Err: errors.New("exit status 3")}, Failed, 3, ""},
		{"killed", runner.Result{ExitCode: -1, Signal: 9, Err: errors.New("signal: killed")}, Failed, -1, "SIGKILL"},
		{"resolved", runner.Result{ExitCode: -1, Signal: 15, Resolved: true}, Resolved, -1, "SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.res.Action = act
			id := run(h, Run{Action: tc.name}, "line 1\nline 2\n", tc.res)
			r, ok := h.Run(id)
			if !ok || r.Outcome != tc.want || r.Signal != tc.signal || r.Output != "line 1\nline 2\n" || r.Pid != 4242 {
				t.Fatalf("run %+v, want outcome %s signal %q", r, tc.want, tc.signal)
			}
			if (r.ExitCode == nil) != (tc.exitCode == -1) || r.ExitCode != nil && *r.ExitCode != tc.exitCode {
				t.Errorf("exit code %v, want %d", r.ExitCode, tc.exitCode)
			}
			if want := []string{"AMX_ALERT_<n>_LABEL_job", "AMX_STATUS", "TARGET"}; !slices.Equal(r.Env, want) {
				t.Errorf("env names %q, want %q", r.Env, want)
			}
		})
	}
	// A start that failed has neither exit code nor pid.
	id, _ := h.Add(Run{Action: "nostart"})
	h.Ended(id, runner.Result{ExitCode: -1, Err: errors.New("start: no such file")})
	if r, _ := h.Run(id); r.Outcome != Failed || r.ExitCode != nil || r.Error == "" {
		t.Errorf("not started: %+v", r)
	}
}

func TestRunsFilteredNewestFirstAndBounded(t *testing.T) {
	h := New()
	for i := range Size + 10 {
		name := []string{"a", "b"}[i%2]
		run(h, Run{Action: name, Alertname: fmt.Sprint("alert", i%3)}, "", runner.Result{})
	}
	h.Skip([]Run{{Action: "a", Reason: state.Cooldown, Count: 3}})
	all := h.Runs(Filter{}, 2*Size)
	if len(all) != Size || all[0].Outcome != Skipped || all[0].Count != 3 || all[0].ID != Size+11 {
		t.Fatalf("%d runs, newest %+v", len(all), all[0])
	}
	if oldest := all[len(all)-1].ID; oldest != 12 {
		t.Errorf("oldest kept run %d, want 12", oldest)
	}
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{Action: "a"}, 50},
		{Filter{Action: "b", Alertname: "alert1"}, 50},
		{Filter{Outcome: Skipped}, 1},
		{Filter{Outcome: Failed}, 0},
	} {
		got := h.Runs(tc.f, 50)
		if len(got) != tc.want {
			t.Errorf("%+v: %d runs, want %d", tc.f, len(got), tc.want)
		}
		for _, r := range got {
			if !tc.f.match(&r) || r.Output != "" {
				t.Errorf("%+v: run %+v", tc.f, r)
			}
		}
	}
}

func TestOutputBudget(t *testing.T) {
	h := New()
	big := strings.Repeat("x", OutputSize+100)
	var ids []uint64
	for range OutputBudget/OutputSize + 5 {
		ids = append(ids, run(h, Run{Action: "loud"}, big, runner.Result{}))
	}
	first, _ := h.Run(ids[0])
	last, _ := h.Run(ids[len(ids)-1])
	if first.Output != "" || !first.OutputCut {
		t.Errorf("the oldest run keeps %d bytes of output", len(first.Output))
	}
	if len(last.Output) != OutputSize || !last.OutputCut {
		t.Errorf("the newest run keeps %d bytes, want %d (cut)", len(last.Output), OutputSize)
	}
	if h.output > OutputBudget {
		t.Errorf("%d bytes of output kept, above %d", h.output, OutputBudget)
	}
}

func TestProcesses(t *testing.T) {
	h := New()
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	a, tail := h.Add(Run{Action: "restart", Key: "db1", Max: 2})
	h.Started(a, 11)
	tail.Write([]byte("one\ntwo\nthree\n"))
	b, _ := h.Add(Run{Action: "restart", Key: "db1", Max: 2})
	h.Started(b, 12)
	c, _ := h.Add(Run{Action: "restart", Key: "db2", Max: 2})
	h.Started(c, 13)
	h.Ended(c, runner.Result{Pid: 13})
	now = now.Add(3 * time.Second)
	ps := h.Processes(2)
	if len(ps) != 2 || ps[0].Pid != 11 || ps[1].Pid != 12 {
		t.Fatalf("processes %+v", ps)
	}
	if p := ps[0]; p.Live != 2 || p.Elapsed != 3 || p.Output != "two\nthree" {
		t.Errorf("process %+v", p)
	}
}

func TestKeptInTheStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() (state.Store, *History) {
		st, err := state.OpenBolt(path, time.Second, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := state.RecordsIn(st, "history/v1")
		if err != nil {
			t.Fatal(err)
		}
		h, err := Open(recs)
		if err != nil {
			t.Fatal(err)
		}
		return st, h
	}
	st, h := open()
	done := run(h, Run{Action: "done", Labels: map[string]string{"alertname": "Disk"}}, "bye\n", runner.Result{})
	running, _ := h.Add(Run{Action: "long"})
	h.Skip([]Run{{Action: "done", Reason: state.Once}})
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st, h = open()
	defer st.Close()
	runs := h.Runs(Filter{}, 10)
	if len(runs) != 3 {
		t.Fatalf("%d runs after a restart, want 3: %+v", len(runs), runs)
	}
	if r, _ := h.Run(done); r.Output != "bye\n" || r.Labels["alertname"] != "Disk" || r.Outcome != Succeeded {
		t.Errorf("finished run after a restart: %+v", r)
	}
	if r, _ := h.Run(running); r.Outcome != Unknown {
		t.Errorf("a run that was running when amx stopped: %+v", r)
	}
	if next, _ := h.Add(Run{Action: "new"}); next != running+2 {
		t.Errorf("next ID %d, want %d", next, running+2)
	}
	if !h.Persistent() || New().Persistent() {
		t.Error("Persistent is wrong")
	}
}

func TestCounts(t *testing.T) {
	h := New()
	// What the history records is counted: two starts of restart, one
	// of which fails, a row of three cooldown refusals, a start of gone.
	run(h, Run{Action: "restart"}, "", runner.Result{})
	run(h, Run{Action: "restart"}, "", runner.Result{ExitCode: 1, Err: errors.New("exit status 1")})
	h.Skip([]Run{{Action: "restart", Reason: state.Cooldown, Count: 3}})
	run(h, Run{Action: "gone"}, "", runner.Result{})
	h.CountLuaError("idle")
	got := h.Counts([]string{"restart", "idle"})
	if len(got) != 3 || got[0].Name != "restart" || got[1].Name != "idle" || got[2].Name != "gone" {
		t.Fatalf("counts %+v", got)
	}
	if c := got[0]; c.Started != 2 || c.Failed != 1 || c.Skipped[state.Cooldown] != 3 {
		t.Errorf("restart counts %+v", c)
	}
	if c := got[1]; c.LuaErrors != 1 || c.Started != 0 {
		t.Errorf("idle counts %+v", c)
	}
}

// A run keeps copies of its strings: those of a notification may share
// the memory of its whole body.
func TestRunOwnsItsStrings(t *testing.T) {
	body := []byte("DiskFulldb1")
	name, host := unsafe.String(&body[0], 8), unsafe.String(&body[8], 3)
	h := New()
	id, _ := h.Add(Run{Action: "a", Alertname: name, Key: host, Labels: map[string]string{"alertname": name, "instance": host},
		Args: []string{host}})
	h.Skip([]Run{{Action: "a", Key: host, Reason: state.Cooldown}})
	copy(body, "XXXXXXXXXXX") // what a reused body would do
	r, _ := h.Run(id)
	skip := h.Runs(Filter{Outcome: Skipped}, 1)[0]
	if r.Alertname != "DiskFull" || r.Key != "db1" || r.Labels["instance"] != "db1" || r.Args[0] != "db1" || skip.Key != "db1" {
		t.Errorf("the run shares the body's memory: %+v %+v", r, skip)
	}
}

// TestNamesShared: runs whose variables have the same names share one
// list of them; other names get their own, and a very long list is worked
// out without being kept.
func TestNamesShared(t *testing.T) {
	var c nameCache
	a := &runner.Action{CommonEnv: []string{"AMX_STATUS=firing", "AMX_ALERT_1_STATUS=firing", "AMX_ALERT_2_STATUS=resolved"}, Env: []string{"X=1"}}
	b := &runner.Action{CommonEnv: []string{"AMX_STATUS=resolved", "AMX_ALERT_1_STATUS=x", "AMX_ALERT_2_STATUS=y"}, Env: []string{"X=2"}}
	want := []string{"AMX_ALERT_<n>_STATUS", "AMX_STATUS", "X"}
	first, second := c.of(a), c.of(b)
	if !slices.Equal(first, want) || !slices.Equal(second, want) || &first[0] != &second[0] {
		t.Errorf("same names: %q and %q, want %q shared", first, second, want)
	}
	other := c.of(&runner.Action{CommonEnv: a.CommonEnv, Env: []string{"Y=1"}})
	if !slices.Equal(other, []string{"AMX_ALERT_<n>_STATUS", "AMX_STATUS", "Y"}) {
		t.Errorf("other names: %q", other)
	}
	long := &runner.Action{Env: []string{strings.Repeat("L", maxCachedKey) + "=1"}}
	if got := c.of(long); len(got) != 1 || len(got[0]) != maxCachedKey || len(c.m) != 2 {
		t.Errorf("long name: %d names, %d kept", len(got), len(c.m))
	}
}

// BenchmarkEnvNames: the names of a two-alert notification's variables, which
// every run that ends lists.
func BenchmarkEnvNames(b *testing.B) {
	a := &runner.Action{CommonEnv: []string{"AMX_RECEIVER=x", "AMX_STATUS=firing", "AMX_EXTERNAL_URL=http://x", "AMX_ALERT_LEN=2", "AMX_GROUP_KEY=k", "AMX_TRUNCATED_ALERTS=0",
		"AMX_LABEL_alertname=DiskFull", "AMX_LABEL_cluster=prod", "AMX_GLABEL_alertname=DiskFull", "AMX_ANNOTATION_summary=s"}}
	for n := range 2 {
		k := "AMX_ALERT_" + string(rune('1'+n))
		a.CommonEnv = append(a.CommonEnv, k+"_STATUS=firing", k+"_START=1", k+"_END=0", k+"_URL=u", k+"_FINGERPRINT=f",
			k+"_LABEL_alertname=DiskFull", k+"_LABEL_cluster=prod", k+"_LABEL_instance=i", k+"_LABEL_job=node", k+"_LABEL_severity=warning", k+"_ANNOTATION_summary=s", k+"_ANNOTATION_description=d")
	}
	b.ReportAllocs()
	for b.Loop() {
		envNames(a)
	}
}
