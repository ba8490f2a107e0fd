package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amx-dev/amx/runner/runnertest"
)

// newRunner returns a runner whose metrics can be read and whose processes
// are all gone when the test ends.
func newRunner(t *testing.T, logs *bytes.Buffer) (*Runner, Metrics) {
	t.Helper()
	m := Metrics{
		ProcessesCurrent: prometheus.NewGauge(prometheus.GaugeOpts{Name: "current"}),
		Signalled:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signalled"}, []string{"result"}),
		Errors:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"stage"}),
	}
	opts := Options{Metrics: m, Grace: 500 * time.Millisecond}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	}
	r := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // kill whatever a test left running
		_ = r.Shutdown(ctx)
	})
	return r, m
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestRunEnvAndExitStatus(t *testing.T) {
	r, m := newRunner(t, nil)
	out := filepath.Join(t.TempDir(), "env")
	results := r.Run([]Action{
		{Name: "ok", Cmd: "sh", Args: []string{"-c", `printf '%s\n' "$AMX_STATUS" "$X" > "$1"`, "sh", out},
			Env: []string{"AMX_STATUS=firing", "X=a b\nc"}},
		{Name: "fails", Cmd: "sh", Args: []string{"-c", "exit 3"}},
		{Name: "missing", Cmd: "/nonexistent/amx-test"},
	})
	if err := results[0].Err; err != nil || results[0].ExitCode != 0 || results[0].Pid == 0 {
		t.Errorf("ok: %+v", results[0])
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != "firing\na b\nc\n" {
		t.Errorf("env seen by the command = %q, %v", got, err)
	}
	if results[1].ExitCode != 3 || results[1].Err == nil || !strings.Contains(results[1].Err.Error(), "exit status 3") {
		t.Errorf("fails: %+v", results[1])
	}
	if results[2].Err == nil || !strings.HasPrefix(results[2].Err.Error(), "start:") || results[2].ExitCode != -1 {
		t.Errorf("missing: %+v", results[2])
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues("start")); n != 1 {
		t.Errorf("start errors = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.ProcessesCurrent); n != 0 {
		t.Errorf("processes current = %v after all ended", n)
	}
}

// TestExitStatusWords: a process that ends badly is reported in the words
// os/exec uses for the same end, which logs and run history show.
func TestExitStatusWords(t *testing.T) {
	r, _ := newRunner(t, nil)
	for _, script := range []string{"exit 3", "kill -TERM $$", "kill -KILL $$", "kill -QUIT $$"} {
		want := exec.Command("sh", "-c", script).Run()
		if want == nil {
			t.Fatalf("%s: os/exec saw no error", script)
		}
		res := r.Run([]Action{{Name: "ends", Cmd: "sh", Args: []string{"-c", script}}})[0]
		if res.Err == nil || res.Err.Error() != "sh: "+want.Error() {
			t.Errorf("%s: err %v, want sh: %v", script, res.Err, want)
		}
		status := want.(*exec.ExitError).Sys().(syscall.WaitStatus)
		var signal syscall.Signal
		if status.Signaled() {
			signal = status.Signal()
		}
		if res.ExitCode != status.ExitStatus() || res.Signal != signal {
			t.Errorf("%s: exit code %d, signal %v; want %d, %v", script, res.ExitCode, res.Signal, status.ExitStatus(), signal)
		}
	}
}

func TestOutputIsLoggedByLine(t *testing.T) {
	var logs bytes.Buffer
	r, _ := newRunner(t, &logs)
	r.Run([]Action{{Name: "talk", Cmd: "sh", Args: []string{"-c", `echo one; echo two >&2; printf three`}, SeparateStderr: true}})
	text := logs.String()
	for _, want := range []string{
		`msg=output name=talk cmd=sh fingerprint="" pid=`,
		`stream=stdout line=one`,
		`stream=stderr line=two`,
		`stream=stdout line=three`,
		`msg=finished`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
}

// Without SeparateStderr both streams share a pipe: every line is logged,
// in the order written, without a stream.
func TestOutputMerged(t *testing.T) {
	var logs bytes.Buffer
	r, _ := newRunner(t, &logs)
	r.Run([]Action{{Name: "talk", Cmd: "sh", Args: []string{"-c", `echo one; echo two >&2; echo three; echo four >&2`}}})
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=output") {
			if strings.Contains(l, "stream=") {
				t.Errorf("a merged line names a stream: %s", l)
			}
			lines = append(lines, l[strings.Index(l, "line=")+5:])
		}
	}
	if want := []string{"one", "two", "three", "four"}; !slices.Equal(lines, want) {
		t.Errorf("lines logged %q, want %q in that order", lines, want)
	}
}

// TestResolveSignalsProcessGroup: a shell that traps the signal and a
// grandchild that does not; both must be reached.
func TestResolveSignalsProcessGroup(t *testing.T) {
	r, m := newRunner(t, nil)
	dir := t.TempDir()
	script := `trap 'echo trapped > "$1/trapped"; exit 0' USR1
sleep 1000 & echo $! > "$1/grandchild"
wait`
	done := make(chan Result, 1)
	go func() {
		done <- r.Run([]Action{{Name: "trap", Cmd: "sh", Args: []string{"-c", script, "sh", dir},
			Fingerprint: "fp", Signal: syscall.SIGUSR1}})[0]
	}()
	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	// Until it has exec'd sleep the grandchild is a copy of the shell,
	// which may still hold the trap: the signal would not end it.
	runnertest.Eventually(t, "grandchild runs sleep", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", grandchild))
		return strings.HasPrefix(string(b), "sleep\x00")
	})

	r.Resolve([]string{"other-fingerprint", ""})
	if runnertest.Gone(grandchild) {
		t.Fatal("a resolve of another fingerprint reached the process")
	}
	r.Resolve([]string{"fp"})
	res := <-done
	if res.Err != nil || res.ExitCode != 0 || !res.Resolved {
		t.Errorf("want the trap to exit 0, got %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "trapped")); err != nil || string(b) != "trapped\n" {
		t.Errorf("trap did not run: %q %v", b, err)
	}
	runnertest.Eventually(t, "grandchild gone", func() bool { return runnertest.Gone(grandchild) })
	if n := testutil.ToFloat64(m.Signalled.WithLabelValues("ok")); n != 1 {
		t.Errorf("signalled = %v", n)
	}
}

// TestNoFingerprint: an action without a fingerprint (an alert that came
// without one) is bound to nothing: no resolve, not even of the empty
// fingerprint, signals it.
func TestNoFingerprint(t *testing.T) {
	r, m := newRunner(t, nil)
	done := make(chan []Result, 1)
	a := Action{Name: "unbound", Cmd: "sleep", Args: []string{"1000"}}
	go func() { done <- r.Run([]Action{a, a}) }()
	runnertest.Eventually(t, "both running", func() bool { return testutil.ToFloat64(m.ProcessesCurrent) == 2 })
	r.Resolve([]string{""})
	select {
	case res := <-done:
		t.Fatalf("a resolve ended processes bound to no fingerprint: %+v", res)
	default:
	}
	if n := testutil.ToFloat64(m.Signalled.WithLabelValues("ok")); n != 0 {
		t.Errorf("signalled = %v, want 0", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // kill both
	_ = r.Shutdown(ctx)
	if res := <-done; res[0].Pid == 0 || res[1].Pid == 0 {
		t.Errorf("an action without fingerprint did not run: %+v", res)
	}
}

// TestGrandchildHoldsOutput: a command that exits and leaves a background
// process holding its stdout ends after the grace (WaitDelay), a success,
// instead of waiting for the background process.
func TestGrandchildHoldsOutput(t *testing.T) {
	var logs bytes.Buffer
	r, _ := newRunner(t, &logs)
	dir := t.TempDir()
	res := r.Run([]Action{{Name: "leaves", Cmd: "sh", Args: []string{"-c", `sleep 1000 & echo $! > "$0/bg"; echo started`, dir}}})[0]
	bg := runnertest.ReadInt(t, filepath.Join(dir, "bg"))
	defer syscall.Kill(bg, syscall.SIGKILL)
	if res.Err != nil || res.ExitCode != 0 {
		t.Errorf("want a success, got %+v", res)
	}
	if runnertest.Gone(bg) {
		t.Error("the background process is gone: the test shows nothing")
	}
	if !strings.Contains(logs.String(), "output still held open") || !strings.Contains(logs.String(), "line=started") {
		t.Errorf("logs:\n%s", logs.String())
	}
}

// TestKillAfter: a process group that ignores its resolved signal is
// killed kill_after later; without kill_after it is left running.
func TestKillAfter(t *testing.T) {
	r, _ := newRunner(t, nil)
	dir := t.TempDir()
	stubborn := `trap '' USR1; echo $$ > "$1/pid"; while :; do sleep 0.05; done`
	done := make(chan Result, 1)
	go func() {
		done <- r.Run([]Action{{Name: "stubborn", Cmd: "sh", Args: []string{"-c", stubborn, "sh", dir},
			Fingerprint: "fp", Signal: syscall.SIGUSR1, KillAfter: 100 * time.Millisecond}})[0]
	}()
	runnertest.ReadInt(t, filepath.Join(dir, "pid"))
	r.Resolve([]string{"fp"})
	select {
	case res := <-done:
		if !res.Resolved || res.Err != nil {
			t.Errorf("want an end by resolve, got %+v", res)
		}
	case <-time.After(runnertest.Deadline):
		t.Fatal("the process that ignores SIGUSR1 was not killed after kill_after")
	}

	// Without kill_after, amx only asks: no kill is scheduled.
	os.Remove(filepath.Join(dir, "pid"))
	go func() {
		done <- r.Run([]Action{{Name: "stubborn", Cmd: "sh", Args: []string{"-c", stubborn, "sh", dir},
			Fingerprint: "fp2", Signal: syscall.SIGUSR1}})[0]
	}()
	runnertest.Eventually(t, "second process started", func() bool {
		_, err := os.Stat(filepath.Join(dir, "pid"))
		return err == nil
	})
	r.Resolve([]string{"fp2"})
	r.mu.Lock()
	for p := range r.live["fp2"] {
		p.mu.Lock()
		if p.kill != nil || !p.resolved {
			t.Errorf("kill scheduled %v, resolved %v; want only the resolved signal", p.kill != nil, p.resolved)
		}
		p.mu.Unlock()
	}
	r.mu.Unlock()
}

func TestIgnoreResolved(t *testing.T) {
	r, m := newRunner(t, nil)
	done := make(chan Result, 1)
	go func() {
		done <- r.Run([]Action{{Cmd: "sleep", Args: []string{"1000"}, Fingerprint: "fp", IgnoreResolved: true}})[0]
	}()
	runnertest.Eventually(t, "process running", func() bool { return testutil.ToFloat64(m.ProcessesCurrent) == 1 })
	r.Resolve([]string{"fp"})
	select {
	case res := <-done:
		t.Fatalf("a process with ignore_resolved ended on resolve: %+v", res)
	default:
	}
	if n := testutil.ToFloat64(m.Signalled.WithLabelValues("ok")); n != 0 {
		t.Errorf("signalled = %v, want 0", n)
	}
}

// TestSignalBeforeStart: a resolve that reaches a process still starting is
// delivered as soon as it has started.
func TestSignalBeforeStart(t *testing.T) {
	p := &proc{}
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.started(cmd.Process.Pid)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("want SIGTERM, got %v", err)
	}
	p.markExited()
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Errorf("signal after exit = %v, want nil", err)
	}
}

// TestEnvironment: a command gets amx's environment with the action's
// variables added, each name once and the last of a name winning, as
// os/exec gave it; a bare name is looked up in PATH.
func TestEnvironment(t *testing.T) {
	t.Setenv("AMX_STATUS", "from amx's own environment")
	t.Setenv("AMX_TEST_KEPT", "kept")
	r, _ := newRunner(t, nil)
	for _, tc := range []struct {
		name string
		a    Action
		want map[string]string
	}{
		{"classic", Action{CommonEnv: []string{"AMX_STATUS=firing", "AMX_RECEIVER=r"}},
			map[string]string{"AMX_STATUS": "firing", "AMX_RECEIVER": "r", "AMX_TEST_KEPT": "kept"}},
		{"route's own, set twice", Action{CommonEnv: []string{"AMX_RECEIVER=r"}, Env: []string{"TARGET=a", "TARGET=b"}},
			map[string]string{"AMX_STATUS": "from amx's own environment", "TARGET": "b"}},
		{"payload file", Action{PayloadFile: true, Payload: []byte("{}")},
			map[string]string{"AMX_TEST_KEPT": "kept"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// env itself, not a shell, which would drop a repeated name.
			tc.a.Cmd, tc.a.Output = "env", NewTail(1<<20)
			if res := r.Run([]Action{tc.a})[0]; res.Err != nil {
				t.Fatal(res.Err)
			}
			b, _ := tc.a.Output.Bytes()
			seen := map[string]string{}
			for line := range strings.Lines(string(b)) {
				name, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
				if _, twice := seen[name]; twice {
					t.Errorf("%s twice in the environment", name)
				}
				seen[name] = value
			}
			for name, value := range tc.want {
				if seen[name] != value {
					t.Errorf("%s=%q, want %q", name, seen[name], value)
				}
			}
			if tc.a.PayloadFile && seen["AMX_PAYLOAD_FILE"] == "" {
				t.Error("no AMX_PAYLOAD_FILE")
			}
		})
	}
	res := r.Run([]Action{{Cmd: "amx-test-no-such-command"}})[0]
	if res.Err == nil || !strings.Contains(res.Err.Error(), "start: exec: \"amx-test-no-such-command\": executable file not found in $PATH") {
		t.Errorf("bare name not in PATH: %v", res.Err)
	}
}

// TestInput: the payload on standard input reaches a command that reads
// it, all of it, and a command that does not read it still ends, a
// success.
func TestInput(t *testing.T) {
	r, _ := newRunner(t, nil)
	out := filepath.Join(t.TempDir(), "in")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, more than a pipe holds
	res := r.Run([]Action{
		{Cmd: "sh", Args: []string{"-c", `cat > "$1"`, "sh", out}, Payload: payload, PayloadStdin: true},
		{Cmd: "true", Payload: payload, PayloadStdin: true},
		{Cmd: "sh", Args: []string{"-c", `cat > "$1.stdin"`, "sh", out}, Stdin: "text"},
		{Cmd: "sh", Args: []string{"-c", `cat > "$1.none"`, "sh", out}},
	})
	for i, r := range res {
		if r.Err != nil || r.ExitCode != 0 {
			t.Errorf("action %d: %+v", i, r)
		}
	}
	for file, want := range map[string][]byte{out: payload, out + ".stdin": []byte("text"), out + ".none": nil} {
		if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes read, want %d (%v)", filepath.Base(file), len(got), len(want), err)
		}
	}
}

func TestTimeout(t *testing.T) {
	r, _ := newRunner(t, nil)
	dir := t.TempDir()
	// The shell ignores SIGTERM, so only the SIGKILL after the grace ends it.
	script := `trap '' TERM; sleep 1000 & echo $! > "$1/grandchild"; while :; do sleep 1; done`
	res := r.Run([]Action{{Cmd: "sh", Args: []string{"-c", script, "sh", dir}, Timeout: 200 * time.Millisecond}})[0]
	if res.Err == nil || !strings.Contains(res.Err.Error(), "timed out after 200ms") {
		t.Errorf("err = %v", res.Err)
	}
	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	runnertest.Eventually(t, "grandchild gone", func() bool { return runnertest.Gone(grandchild) })
}

func TestShutdown(t *testing.T) {
	r, _ := newRunner(t, nil)
	done := make(chan Result, 1)
	go func() { done <- r.Run([]Action{{Cmd: "sleep", Args: []string{"1000"}}})[0] }()
	runnertest.Eventually(t, "process running", func() bool { return r.wgCount() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // grace already over
	if err := r.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v", err)
	}
	if res := <-done; res.Err == nil {
		t.Errorf("the process should have been killed: %+v", res)
	}
	res := r.Run([]Action{{Cmd: "true"}})[0]
	if !errors.Is(res.Err, ErrShuttingDown) {
		t.Errorf("run after shutdown: %+v", res)
	}
	// With nothing running, shutdown returns at once.
	if err := New(Options{}).Shutdown(ctx); err != nil {
		t.Errorf("idle Shutdown = %v", err)
	}
}

func (r *Runner) wgCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.live {
		n += len(set)
	}
	return n
}

func TestLineLoggerSplitsAndCaps(t *testing.T) {
	var logs bytes.Buffer
	w := &lineLogger{log: newActionLog(slog.New(slog.NewJSONHandler(&logs, nil)), &Action{}), stream: "stdout", pid: func() int { return 7 }}
	long := strings.Repeat("x", maxLine+10)
	for _, chunk := range []string{"ab", "c\nde", "f\n\n", long + "\n", "tail"} {
		w.Write([]byte(chunk))
	}
	w.flush()
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Line string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Line)
	}
	want := []string{"abc", "def", "", long[:maxLine], long[maxLine:], "tail"}
	if !slices.Equal(got, want) {
		t.Errorf("lines = %.60q, want %.60q", got, want)
	}
}

// TestOutputCut: a process that writes without end gets at most maxOutput
// of each stream logged, is never blocked, and the cut is logged.
func TestOutputCut(t *testing.T) {
	var logs bytes.Buffer
	r, _ := newRunner(t, &logs)
	// 3 MiB of 1 KiB lines on stdout, then a line on stderr.
	res := r.Run([]Action{{Name: "chatty", Cmd: "sh", Args: []string{"-c",
		`head -c 3145728 /dev/zero | tr '\0' 'x' | fold -w 1023; echo done >&2`}, SeparateStderr: true}})[0]
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	out := logs.String()
	if n := strings.Count(out, "stream=stdout"); n > maxOutput/1024+1 || n < maxOutput/1024-1 {
		t.Errorf("%d stdout lines logged, want about %d", n, maxOutput/1024)
	}
	// 3 MiB and a newline every 1023 bytes, less the 1 MiB logged.
	if !strings.Contains(out, `msg="output cut"`) || !strings.Contains(out, "dropped_bytes=2100227") {
		t.Errorf("the cut is not logged with its size:\n%.2000s", out[max(0, len(out)-2000):])
	}
	if !strings.Contains(out, "stream=stderr line=done") {
		t.Error("the other stream lost its line")
	}
}

// threads is the number of OS threads of the test process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// TestWaitingCostsNoThread: a running process is watched by the network
// poller, not by a thread blocked in waitid. With a thread each, 253
// processes under a task limit of 512 aborted amx.
func TestWaitingCostsNoThread(t *testing.T) {
	r, _ := newRunner(t, nil)
	before := threads(t)
	actions := make([]Action, 300)
	for i := range actions {
		actions[i] = Action{Name: "sleep", Cmd: "sleep", Args: []string{"1000"}, Fingerprint: fmt.Sprint(i), NoWait: true}
	}
	for i, res := range r.Run(actions) {
		if !res.Started {
			t.Fatalf("action %d: %+v", i, res)
		}
	}
	during := threads(t)
	t.Logf("threads: %d before, %d with 300 processes running", before, during)
	if during-before > 50 {
		t.Errorf("300 running processes took %d threads, want fewer than 50", during-before)
	}
	fps := make([]string, len(actions))
	for i := range fps {
		fps[i] = fmt.Sprint(i)
	}
	r.Resolve(fps)
	runnertest.Eventually(t, "the processes to end", func() bool { return r.wgCount() == 0 })
}

// TestShutdownTermsThenKills: when the grace is over, each process group
// still running gets SIGTERM, a chance to clean up, and SIGKILL the
// runner's grace later if it is still there.
func TestShutdownTermsThenKills(t *testing.T) {
	r, _ := newRunner(t, nil)
	dir := t.TempDir()
	done := make(chan []Result, 1)
	go func() {
		done <- r.Run([]Action{
			{Name: "polite", Cmd: "sh", Args: []string{"-c", `trap 'echo cleaned > "$0/polite"; exit 0' TERM; echo up > "$0/up1"; sleep 1000 & wait`, dir}},
			{Name: "stubborn", Cmd: "sh", Args: []string{"-c", `trap '' TERM; echo up > "$0/up2"; sleep 1000`, dir}},
		})
	}()
	runnertest.Eventually(t, "both up", func() bool {
		_, e1 := os.Stat(filepath.Join(dir, "up1"))
		_, e2 := os.Stat(filepath.Join(dir, "up2"))
		return e1 == nil && e2 == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // grace over
	if err := r.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v", err)
	}
	res := <-done
	if b, _ := os.ReadFile(filepath.Join(dir, "polite")); string(b) != "cleaned\n" || res[0].Err != nil {
		t.Errorf("the polite command did not clean up on SIGTERM: %q, %+v", b, res[0])
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "killed") {
		t.Errorf("the stubborn command: %+v, want killed", res[1])
	}
}

// TestWaitAtMost: Run waits for a process at most WaitAtMost: one that
// fails within it is reported as failed, one still running then as
// started, and its end is still counted.
func TestWaitAtMost(t *testing.T) {
	r, m := newRunner(t, nil)
	res := r.Run([]Action{
		{Name: "fails", Cmd: "false", WaitAtMost: time.Minute, NotifyOnFailure: true},
		{Name: "runs on", Cmd: "sleep", Args: []string{"1000"}, Fingerprint: "f", WaitAtMost: 200 * time.Millisecond},
	})
	if res[0].Err == nil || res[0].Started {
		t.Errorf("a command failing within its wait: %+v", res[0])
	}
	if !res[1].Started || res[1].Err != nil || res[1].Pid == 0 {
		t.Errorf("a command running past its wait: %+v", res[1])
	}
	before := testutil.ToFloat64(m.Errors.WithLabelValues("command"))
	r.Resolve([]string{"f"})
	runnertest.Eventually(t, "the process to end", func() bool { return r.wgCount() == 0 })
	if after := testutil.ToFloat64(m.Errors.WithLabelValues("command")); after != before {
		t.Errorf("a process ended by its resolve was counted as failed")
	}
}

func TestTailKeepsTheLastBytes(t *testing.T) {
	const size = 10
	for _, writes := range [][]string{
		{},
		{"abc"},
		{"0123456789"},
		{"012", "3456789abcdef"},           // fills and wraps in one write
		{"012", "3456789abcdefghijklmnop"}, // longer than the tail after a start
		{"0123456", "789", "a", "bcdefghij", "klm"},
	} {
		tail := NewTail(size)
		var all string
		for _, w := range writes {
			tail.Write([]byte(w))
			all += w
		}
		want := all[max(0, len(all)-size):]
		got, cut := tail.Bytes()
		if string(got) != want || cut != (len(all) > size) {
			t.Errorf("writes %q: kept %q cut %v, want %q cut %v", writes, got, cut, want, len(all) > size)
		}
	}
	var zero Tail
	zero.Write([]byte("nothing kept"))
	if got, _ := zero.Bytes(); len(got) != 0 {
		t.Errorf("zero Tail kept %q", got)
	}
}

// The caller hears of the start with the pid and of the end with the
// Result, and the output's end is kept, from both streams.
func TestStartedEndedAndOutput(t *testing.T) {
	r, _ := newRunner(t, nil)
	var mu sync.Mutex
	var pids []int
	var ends []Result
	a := Action{
		Name: "hooks", Cmd: "sh", Args: []string{"-c", "echo out; echo err >&2; kill -TERM $$"},
		Output:  NewTail(64),
		Started: func(pid int) { mu.Lock(); pids = append(pids, pid); mu.Unlock() },
		Ended:   func(res Result) { mu.Lock(); ends = append(ends, res); mu.Unlock() },
	}
	res := r.Run([]Action{a})[0]
	mu.Lock()
	defer mu.Unlock()
	if len(pids) != 1 || pids[0] != res.Pid || len(ends) != 1 || ends[0].Pid != res.Pid {
		t.Fatalf("started %v, ended %v, result pid %d", pids, ends, res.Pid)
	}
	if res.ExitCode != -1 || res.Signal != syscall.SIGTERM || ends[0].Signal != syscall.SIGTERM {
		t.Errorf("exit code %d signal %v, want -1 and SIGTERM", res.ExitCode, res.Signal)
	}
	out, _ := a.Output.Bytes()
	if lines := strings.Fields(string(out)); len(lines) != 2 || !slices.Contains(lines, "out") || !slices.Contains(lines, "err") {
		t.Errorf("output kept %q, want the lines out and err", out)
	}

	// An action that cannot start ends without starting.
	pids, ends = nil, nil
	mu.Unlock()
	bad := Action{Name: "missing", Cmd: "/nonexistent/amx-test",
		Started: func(pid int) { mu.Lock(); pids = append(pids, pid); mu.Unlock() },
		Ended:   func(res Result) { mu.Lock(); ends = append(ends, res); mu.Unlock() },
	}
	r.Run([]Action{bad})
	mu.Lock()
	if len(pids) != 0 || len(ends) != 1 || ends[0].Err == nil {
		t.Errorf("not started: started %v, ended %+v", pids, ends)
	}
}
