package main

// End-to-end tests: the amx binary, built once, over real HTTP with real
// processes and signals, and driven by a real Alertmanager.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner/runnertest"
)

// deadline bounds every wait: see runnertest.Deadline.
const deadline = runnertest.Deadline

var amxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amx-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	amxBin = filepath.Join(dir, "amx")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", amxBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build amx:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// amx is a running amx process.
type amx struct {
	cmd  *exec.Cmd
	addr string // host:port
	done chan error

	mu   sync.Mutex
	logs bytes.Buffer
}

func (a *amx) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// waitLog waits until amx has logged a line containing want. Reading the log
// pipe trails amx's writes, so a log assertion must wait, not look once.
func (a *amx) waitLog(t *testing.T, want string) {
	t.Helper()
	runnertest.Eventually(t, "log "+want, func() bool { return strings.Contains(a.Logs(), want) })
}

var listeningRe = regexp.MustCompile(`msg=listening address=(\S+)`)

// startAmx runs the binary with args and -l 127.0.0.1:0, and waits until it
// listens. The process is stopped when the test ends.
func startAmx(t *testing.T, args ...string) *amx {
	t.Helper()
	a := &amx{done: make(chan error, 1)}
	a.cmd = exec.Command(amxBin, append([]string{"-l", "127.0.0.1:0"}, args...)...)
	a.cmd.Env = append(os.Environ(), "AMX_E2E_PARENT=inherited")
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			a.mu.Lock()
			a.logs.WriteString(s.Text() + "\n")
			a.mu.Unlock()
			if m := listeningRe.FindStringSubmatch(s.Text()); m != nil {
				addr <- m[1]
			}
		}
		a.done <- a.cmd.Wait()
	}()
	t.Cleanup(func() {
		sig := syscall.SIGTERM
		if t.Failed() {
			// The Go runtime writes every goroutine's stack to the
			// logs printed below, and exits.
			sig = syscall.SIGQUIT
		}
		a.cmd.Process.Signal(sig)
		select {
		case <-a.done:
		case <-time.After(deadline):
			a.cmd.Process.Kill()
			t.Errorf("amx did not stop on %v", sig)
		}
		if t.Failed() {
			t.Logf("amx logs:\n%s", a.Logs())
		}
	})
	select {
	case a.addr = <-addr:
	case err := <-a.done:
		a.done <- err // for the cleanup
		t.Fatalf("amx exited before listening: %v\n%s", err, a.Logs())
	case <-time.After(deadline):
		t.Fatalf("amx did not listen:\n%s", a.Logs())
	}
	return a
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func post(t *testing.T, client *http.Client, url, body string) (int, string) {
	t.Helper()
	a := tryPost(client, url, body)
	if a.code == 0 {
		t.Fatalf("POST %s: %s", url, a.body)
	}
	return a.code, a.body
}

// tryPost posts without failing the test, so goroutines may use it; a
// transport error is code 0 with the error as body.
func tryPost(client *http.Client, url, body string) answer {
	if client == nil {
		client = &http.Client{Timeout: deadline}
	}
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return answer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// answer is an HTTP status code and body.
type answer struct {
	code int
	body string
}

// postAsync posts in the background, for notifications whose answer waits
// for a command that the test ends later.
func postAsync(url, body string) <-chan answer {
	c := make(chan answer, 1)
	go func() { c <- tryPost(nil, url, body) }()
	return c
}

func payload(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", "payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// trapScript stays up until SIGUSR1, with a grandchild sleep that must go
// too; it records its own and the grandchild's pid.
const trapScript = `trap 'echo trapped >> "$0/trapped"; exit 0' USR1
echo "$AMX_ALERT_1_FINGERPRINT" >> "$0/runs"
sleep 1000 & echo $! > "$0/grandchild"
wait`

func TestCommandLine(t *testing.T) {
	badLua := writeFile(t, t.TempDir(), "amx.yml", "routes:\n  - name: r\n    lua: 'if then'\n")
	// Every problem at once: a field, a missing script and a syntax error.
	badAll := writeFile(t, t.TempDir(), "amx.yml", "routes:\n  - name: r\n    lua: 'if then'\n    timout: 1m\n"+
		"  - name: s\n    script: missing.lua\n")
	failing := writeFile(t, t.TempDir(), "amx.yml", "routes:\n  - name: r\n    lua: |\n      log('about to fail')\n      error('bug', 0)\n")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string
	}{
		{"explain a failing script", []string{"explain", "-f", failing, "examples/payloads/firing-rebootmachine.json"}, 1,
			"log: line 4: about to fail\n    error (error): " + failing + ": bug"},
		{"-h", []string{"-h"}, 0, "Usage: amx [options] [script [args...]]"},
		{"no command", nil, 1, "amx: invalid configuration:\nno command to run"},
		{"bad config", []string{"-f", "rules/testdata/misspelt-match-labels.yml"}, 1,
			`rules/testdata/misspelt-match-labels.yml:3:5: commands[0].match_lables: unknown field (did you mean "match_labels"?)`},
		{"bad flag", []string{"-x"}, 2, "flag provided but not defined: -x"},
		{"log.format json", []string{"--log.format=json", "-l", "256.0.0.1:1", "-f", "examples/executor.yml"}, 1, `"level":"ERROR","msg":"listen"`},
		{"log.level", []string{"--log.level=loud"}, 2, `amx: --log.level: want debug, info, warn or error, got "loud"`},
		{"log.format", []string{"--log.format=xml"}, 2, `amx: --log.format: want logfmt or json, got "xml"`},
		{"version", []string{"version"}, 0, "amx (devel) go1."},
		{"--version", []string{"--version"}, 0, "amx (devel) go1."},
		{"-f x --version", []string{"-f", "examples/executor.yml", "--version"}, 0, "amx (devel) go1."},
		{"help", []string{"help"}, 0, "Usage: amx [options] [script [args...]]"},
		// Not a server running a command named version for every alert.
		{"subcommand as script", []string{"-f", "examples/executor.yml", "version"}, 2,
			`amx: "version" is a subcommand: put it first (amx version ...), or give a script of that name with a path (./version)`},
		// No last good rules exist at startup: a broken config fails fast.
		{"Lua syntax error", []string{"-f", badLua}, 1, "amx: invalid configuration:\n" + badLua + ":3: "},
		// The rule author's tools; nothing is spawned.
		{"test", []string{"test", "examples/tests/executor.yml", "examples/tests/rules.yml"}, 0, "Unit Testing: examples/tests/rules.yml\n  SUCCESS (9 tests)"},
		{"test --run", []string{"test", "--run", "maintenance", "examples/tests/rules.yml"}, 0, "SUCCESS (1 test)"},
		{"test failing", []string{"test", "engine/ruletool/testdata/failing.yml"}, 1, "name: wrong arguments and a missing skip"},
		{"test broken", []string{"test", "engine/ruletool/testdata/broken.yml"}, 2, "broken.yml:5:31: tests[0].expect.exec[0].comand: unknown field"},
		{"check", []string{"check", "examples/rules.yml", "examples/executor.yml"}, 0, "Checking 'examples/executor.yml'  SUCCESS"},
		{"check broken", []string{"check", badLua}, 1, "Checking '" + badLua + "'  FAILED:\n  " + badLua + ":3: "},
		{"check -f", []string{"check", "-f", badLua}, 1, "Checking '" + badLua + "'  FAILED:\n  " + badLua + ":3: "},
		{"check every problem", []string{"check", badAll}, 1, "Checking '" + badAll + "'  FAILED:\n  " +
			badAll + ":4:5: routes[0].timout: unknown field (did you mean \"timeout\"?)\n  " +
			badAll + ":6:13: routes[1].script: open " + filepath.Dir(badAll) + "/missing.lua: no such file or directory\n  " +
			badAll + ":3: syntax error near 'then'\n"},
		{"check nothing", []string{"check"}, 2, "Usage: amx check [-f CONFIG] CONFIG...\n"},
		{"check bad flag", []string{"check", "-x"}, 2, "flag provided but not defined: -x\nUsage: amx check"},
		{"test bad flag", []string{"test", "-x"}, 2, "flag provided but not defined: -x\nUsage: amx test"},
		{"explain bad flag", []string{"explain", "-x"}, 2, "flag provided but not defined: -x\nUsage: amx explain"},
		{"explain without -f", []string{"explain", "examples/payloads/firing-rebootmachine.json"}, 2, "amx explain: -f CONFIG is required\nUsage: amx explain"},
		{"explain", []string{"explain", "-f", "examples/rules.yml", "examples/payloads/firing-rebootmachine.json"}, 0,
			"route reboot (examples/rules/reboot.lua):\n  alert e630cdb7300ce41f: script ran\n    exec: examples/bin/reboot-host [\"app3\"]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(amxBin, tc.args...).CombinedOutput()
			code := 0
			if exit, ok := errors.AsType[*exec.ExitError](err); ok {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.output) || strings.Count(string(out), "Usage:") > 1 {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.output)
			}
		})
	}
}

// TestRunInProcess drives run() without a process. It also keeps run and
// everything it calls linked into this test binary: go test caches results
// by the test binary, and the end-to-end tests exercise the separately
// built amx, so without it a change to amx's code could be answered from
// the cache.
func TestRunInProcess(t *testing.T) {
	var out bytes.Buffer
	code := run(t.Context(), []string{"-f", "rules/testdata/tls-half.yml"}, &out, &out, nil)
	if want := "tls_crt: tls_crt and tls_key must be given together"; code != 1 || !strings.Contains(out.String(), want) {
		t.Errorf("exit %d, output %q, want 1 and %q", code, out.String(), want)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // serve, then stop at once
	out.Reset()
	if code := run(ctx, []string{"-l", "127.0.0.1:0", "true"}, &out, &out, nil); code != 0 || !strings.Contains(out.String(), "msg=stopped") {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}

// TestExplainStdin: amx explain reads the payload from stdin with "-", and
// --env prints the AMX_* environment.
func TestExplainStdin(t *testing.T) {
	cmd := exec.Command(amxBin, "explain", "-f", "examples/executor.yml", "--env", "-")
	cmd.Stdin = strings.NewReader(payload(t, "firing-highlatency.json"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"commands[0] (echo banana tomato):\n  matched commonLabels", "      AMX_ALERT_1_LABEL_service=checkout\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestFiringRunsCommandWithEnv: a command given on the command line, as
// with the old executor, sees the AMX_* variables and amx's own environment.
func TestFiringRunsCommandWithEnv(t *testing.T) {
	dir := t.TempDir()
	a := startAmx(t, "sh", "-c", `env > "$0/env"`, dir)
	code, answer := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-nodedown-truncated.json"))
	if code != 200 || answer != "ok\n" {
		t.Fatalf("answer %d %q", code, answer)
	}
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"AMX_E2E_PARENT=inherited",
		"AMX_STATUS=firing",
		"AMX_ALERT_LEN=3",
		"AMX_ALERT_3_FINGERPRINT=a520f39cefe7d7f4",
		"AMX_LABEL_team=ops ünïcode ✓",
		"AMX_ANNOTATION_description=Line one\nline two with \"quotes\" and $HOME and `ticks`\n",
		"AMX_TRUNCATED_ALERTS=2",
	} {
		if !strings.Contains(string(env), want) {
			t.Errorf("command env lacks %q", want)
		}
	}
}

// TestResolveSignalsProcessGroup: firing starts a long command, resolved
// signals its whole process group; the firing answer then completes 200.
func TestResolveSignalsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", %q, %q]
    resolved_signal: SIGUSR1
`, trapScript, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"

	firing := postAsync(url, payload(t, "firing-rebootmachine.json"))
	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	// Until the shell's child has exec'd sleep it may still hold the
	// shell's trap, which would take the signal meant for sleep.
	runnertest.Eventually(t, "the grandchild running sleep", func() bool {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", grandchild))
		return strings.HasPrefix(string(cmdline), "sleep\x00")
	})

	if code, body := post(t, nil, url, payload(t, "resolved-rebootmachine.json")); code != 200 {
		t.Fatalf("resolved: %d %q", code, body)
	}
	if got := <-firing; got.code != 200 {
		t.Errorf("the firing answer after the resolve: %d %q", got.code, got.body)
	}
	runnertest.Eventually(t, "grandchild gone", func() bool { return runnertest.Gone(grandchild) })
	if b, _ := os.ReadFile(filepath.Join(dir, "trapped")); string(b) != "trapped\n" {
		t.Errorf("the trap ran %q", b)
	}
	a.waitLog(t, `msg="signalled process group" name=commands[0] cmd=sh fingerprint=e630cdb7300ce41f signal=SIGUSR1`)
}

// TestResolvedAlertInFiringGroup replays Alertmanager 0.25's recordings: a
// process bound to db1's alert is signalled by a *firing* notification that
// carries db1 as resolved, and the new process binds to db2, still firing.
func TestResolvedAlertInFiringGroup(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo "$$ $AMX_ALERT_1_STATUS" >> "$0/runs"; exec sleep 1000', %q]
    resolved_signal: SIGTERM
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	answers := make(chan int, 2)
	send := func(name string) {
		body := payload(t, name)
		go func() { answers <- tryPost(nil, url, body).code }()
	}
	lines := func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "runs"))
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}

	send("firing-diskfull-two-alerts.json") // binds to db1, 0aa7859a3dd8b47b
	runnertest.Eventually(t, "first process", func() bool { return len(lines()) == 1 && lines()[0] != "" })
	send("firing-diskfull-one-alert-resolved.json") // db1 resolved, db2 firing
	if code := <-answers; code != 200 {
		t.Errorf("first firing answer: %d", code)
	}
	runnertest.Eventually(t, "second process", func() bool { return len(lines()) == 2 })
	a.waitLog(t, "fingerprint=0aa7859a3dd8b47b signal=SIGTERM")
	a.waitLog(t, "msg=started name=commands[0] cmd=sh fingerprint=8bc64ed21b99e322")
	if code, _ := post(t, nil, url, payload(t, "resolved-diskfull.json")); code != 200 {
		t.Errorf("resolved: %d", code)
	}
	if code := <-answers; code != 200 {
		t.Errorf("second firing answer: %d", code)
	}
}

// TestLuaRoutes: a route's command gets the route's environment and is
// signalled by its alert's resolve; a broken and a runaway route fail alone.
func TestLuaRoutes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "trap.sh", `echo "$AMX_ROUTE $HOST $AMX_ALERT_FINGERPRINT" > "$0/env"
`+trapScript)
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
lua:
  timeout: 200ms
routes:
  - name: broken
    retry_on_script_error: true
    lua: |
      local x = nil
      exec(x.cmd)
  - name: runaway
    notify_on_failure: false
    lua: while true do end
  - name: trap
    match_labels: {alertname: RebootMachine}
    resolved_signal: SIGUSR1
    lua: |
      if alert.status == "firing" then
        env("HOST", alert.labels.instance)
        exec("sh", "-c", '. "$0/trap.sh"', %q)
      end
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"

	firing := postAsync(url, payload(t, "firing-rebootmachine.json"))
	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if string(env) != "trap app3:8080 e630cdb7300ce41f\n" {
		t.Errorf("route env = %q", env)
	}
	code, body := post(t, nil, url, payload(t, "resolved-rebootmachine.json"))
	got := <-firing
	runnertest.Eventually(t, "grandchild gone", func() bool { return runnertest.Gone(grandchild) })
	if b, _ := os.ReadFile(filepath.Join(dir, "trapped")); string(b) != "trapped\n" {
		t.Errorf("the route's process was not signalled: %q", b)
	}
	// The broken route notifies (500) for each notification it ran on;
	// the runaway one was stopped by its deadline and does not notify.
	want := "broken: " + cfg + ":9: attempt to index a nil value (local 'x')\n"
	if got.code != 500 || got.body != want || code != 500 || body != want {
		t.Errorf("answers: firing %d %q, resolved %d %q; want 500 %q", got.code, got.body, code, body, want)
	}
	if n := metric(t, a, `am_executor_lua_errors_total{kind="timeout",route="runaway"}`); n != 2 {
		t.Errorf("runaway timeouts = %v, want 2", n)
	}
	a.waitLog(t, "route=runaway fingerprint=e630cdb7300ce41f err=")
}

// TestLuaMemoryBomb: scripts that allocate without end are stopped by the
// memory limit (their deadline is far away), and the server's peak RSS stays
// bounded and it keeps serving.
func TestLuaMemoryBomb(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", `
lua:
  timeout: 20s
  memory_limit: 128MiB
routes:
  - name: rep
    lua: local t = {} while true do t[#t+1] = string.rep("x", 1e6) end
  - name: doubling
    lua: local t, s = {}, ("x"):rep(2^20) while true do t[#t+1] = s .. "y" end
`)
	a := startAmx(t, "-f", cfg)
	code, body := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-rebootmachine.json"))
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if code != 500 || len(lines) != 2 || lines[0] != "rep: "+cfg+":7: stopped: memory limit of 128 MiB reached" ||
		lines[1] != "doubling: "+cfg+":9: stopped: memory limit of 128 MiB reached" {
		t.Errorf("answer %d:\n%s", code, body)
	}
	peakKiB := procStatus(t, a.cmd.Process.Pid, "VmHWM")
	t.Logf("amx peak RSS %d MiB", peakKiB>>10)
	if peakKiB == 0 || peakKiB > 512<<10 {
		t.Errorf("amx peak RSS %d KiB, want under 512 MiB", peakKiB)
	}
	if code, _ := post(t, nil, "http://"+a.addr+"/", payload(t, "resolved-rebootmachine.json")); code != 500 {
		t.Errorf("the server should still answer (500 from the same routes), got %d", code)
	}
	if n := metric(t, a, `am_executor_lua_errors_total{kind="memory",route="rep"}`); n != 2 {
		t.Errorf("memory errors = %v, want 2", n)
	}
}

func TestFailureAndBadInput(t *testing.T) {
	a := startAmx(t, "sh", "-c", "echo failing >&2; exit 4")
	url := "http://" + a.addr + "/"
	code, body := post(t, nil, url, payload(t, "firing-highlatency.json"))
	if code != 500 || body != "command line: sh: exit status 4\n" {
		t.Errorf("failure: %d %q", code, body)
	}
	a.waitLog(t, "msg=output name=\"command line\" cmd=sh")
	a.waitLog(t, "line=failing")
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"status":"firing"`, 400},
		{`{"status":"pending","alerts":[{}]}`, 400},
		{"", 400},
	} {
		if code, body := post(t, nil, url, tc.body); code != tc.code || strings.Count(body, "\n") != 1 {
			t.Errorf("%q: %d %q", tc.body, code, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPatch, url, strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("PATCH: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestMaxAcrossNotifications: 20 concurrent notifications for one alert and
// a command with max 2 start exactly 2 processes.
func TestMaxAcrossNotifications(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo $$ >> "$0/runs"; exec sleep 1000', %q]
    max: 2
    resolved_signal: TERM
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	firing := payload(t, "firing-rebootmachine.json")
	for i := range 20 {
		// Twenty occurrences of one alert: copies of one occurrence
		// would wait for the first's answer instead of meeting max.
		body := strings.Replace(firing, `"startsAt": "2026`, fmt.Sprintf(`"startsAt": "%d`, 3000+i), 1)
		wg.Go(func() { codes <- tryPost(nil, url, body).code })
	}
	runnertest.Eventually(t, "18 skipped", func() bool {
		return metric(t, a, `am_executor_skipped_total{reason="fingerover"}`) == 18
	})
	// Admitted is not yet running: resolve only once both have said so,
	// or the resolve can kill one before it writes its line.
	runs := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "runs"))
		return strings.Count(string(b), "\n")
	}
	runnertest.Eventually(t, "2 running", func() bool { return runs() == 2 })
	post(t, nil, url, payload(t, "resolved-rebootmachine.json"))
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("answer %d", code)
		}
	}
	if n := runs(); n != 2 {
		t.Errorf("%d processes ran, want 2", n)
	}
}

func metric(t *testing.T, a *amx, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestShutdownKillsLeftovers: on SIGTERM, amx gives running commands the
// grace, then kills their process groups, and exits 0 with no orphan left.
func TestShutdownKillsLeftovers(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
shutdown_grace: 500ms
commands:
  - cmd: sh
    args: ["-c", 'trap "" TERM; sleep 1000 & echo $! > "$0/grandchild"; wait', %q]
`, dir))
	a := startAmx(t, "-f", cfg)
	answered := postAsync("http://"+a.addr+"/", payload(t, "firing-highlatency.json"))
	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("amx exit: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("amx did not exit")
	}
	a.done <- nil // for the cleanup
	if code := (<-answered).code; code != 500 {
		t.Errorf("the open notification was answered %d, want 500 so that Alertmanager retries", code)
	}
	if !runnertest.Gone(grandchild) {
		t.Errorf("grandchild %d survived the shutdown", grandchild)
	}
	a.waitLog(t, "shutdown grace over; terminating process group")
	a.waitLog(t, "still running after SIGTERM; killing process group")
}

// TestTLS serves HTTPS, and rotates the certificate when its files change,
// without a restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf("tls_crt: %s\ntls_key: %s\ncommands:\n  - cmd: \"true\"\n", certFile, keyFile))
	a := startAmx(t, "-f", cfg)
	client := func(pool *x509.CertPool) *http.Client {
		// No connection reuse: each request makes a new handshake.
		return &http.Client{Timeout: deadline, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	}
	if code, body := post(t, client(pool), "https://"+a.addr+"/", payload(t, "firing-highlatency.json")); code != 200 {
		t.Errorf("TLS: %d %q", code, body)
	}

	_, _, rotated := selfSigned(t, dir)
	runnertest.Eventually(t, "the rotated certificate", func() bool {
		return tryPost(client(rotated), "https://"+a.addr+"/", payload(t, "firing-highlatency.json")).code == 200
	})
	if got := tryPost(client(pool), "https://"+a.addr+"/", payload(t, "firing-highlatency.json")); got.code != 0 {
		t.Errorf("the old certificate is still served: %d", got.code)
	}

	// Turning TLS off takes a restart: the listener stays as it is.
	writeFile(t, dir, "amx.yml", "commands:\n  - cmd: \"true\"\n")
	a.waitLog(t, "TLS is turned on or off only on restart")
	if code, body := post(t, client(rotated), "https://"+a.addr+"/", payload(t, "firing-highlatency.json")); code != 200 {
		t.Errorf("TLS after a config without it: %d %q", code, body)
	}
	// Go's TLS server answers plain HTTP with a 400.
	if resp, err := http.Post("http://"+a.addr+"/", "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}
}

// TestReload changes a running amx's rules the ways an operator does: an
// editor's rename-over save of a script, a broken config that leaves the
// rules in force, its fix, and with --watch=false, SIGHUP.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	// The route fails with its version, so every answer says which rules
	// decided it.
	script := func(v string) string { return fmt.Sprintf("error(%q, 0)", v) }
	writeFile(t, dir, "r.lua", script("v1"))
	cfg := writeFile(t, dir, "amx.yml", "routes:\n  - name: r\n    script: r.lua\n    retry_on_script_error: true\n")
	version := func(t *testing.T, a *amx) string {
		_, body := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-highlatency.json"))
		body = strings.TrimSpace(body) // "r: /path/r.lua: v1"
		return body[strings.LastIndex(body, " ")+1:]
	}
	waitVersion := func(t *testing.T, a *amx, want string) {
		t.Helper()
		runnertest.Eventually(t, "rules "+want, func() bool { return version(t, a) == want })
	}

	t.Run("watch", func(t *testing.T) {
		a := startAmx(t, "-f", cfg)
		if got := version(t, a); got != "v1" {
			t.Fatalf("rules %q at start", got)
		}
		// vim: write a new file, rename it over the old one.
		writeFile(t, dir, "r.lua~", script("v2"))
		if err := os.Rename(filepath.Join(dir, "r.lua~"), filepath.Join(dir, "r.lua")); err != nil {
			t.Fatal(err)
		}
		waitVersion(t, a, "v2")

		writeFile(t, dir, "amx.yml", "routes:\n  - name: r\n    script: r.lua\n    retry_on_script_error: true\n    max: many\n")
		a.waitLog(t, "reload failed")
		if got := version(t, a); got != "v2" {
			t.Errorf("rules %q after a broken save, want v2 still", got)
		}
		if !strings.Contains(a.Logs(), cfg+":5:10: routes[0].max: ") {
			t.Errorf("the failure does not name file:line:col and the field:\n%s", a.Logs())
		}
		writeFile(t, dir, "amx.yml", "routes:\n  - name: r\n    script: r.lua\n    retry_on_script_error: true\n    max: 2\n")
		writeFile(t, dir, "r.lua", script("v3"))
		waitVersion(t, a, "v3")
	})

	t.Run("SIGHUP without watching", func(t *testing.T) {
		writeFile(t, dir, "r.lua", script("v1"))
		a := startAmx(t, "-f", cfg, "--watch=false")
		writeFile(t, dir, "r.lua", script("v2"))
		// Ten debounce periods and more: a watcher would have reloaded.
		time.Sleep(time.Second)
		if got := version(t, a); got != "v1" {
			t.Errorf("rules %q with --watch=false, want v1 until SIGHUP", got)
		}
		a.cmd.Process.Signal(syscall.SIGHUP)
		waitVersion(t, a, "v2")
	})
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestAlertmanager drives amx with a real Alertmanager: an alert posted to
// its API reaches amx and runs a command; its resolve signals the command.
//
// Alertmanager sends a resolve only for alerts whose firing notification it
// logged as delivered, and a classic command keeps the answer open until it
// exits. Alertmanager's next flush re-sends the firing group; amx skips it
// as a duplicate of the one still running and answers at once, and the
// resolve follows.
//
// It runs without credentials, and with each kind Alertmanager's
// http_config can send: basic auth and a bearer token, from files on both
// sides, as in examples/auth.yml and examples/alertmanager.yml.
func TestAlertmanager(t *testing.T) {
	bin := alertmanagerBinary(t)
	for _, tc := range []struct{ name, amx, alertmanager string }{
		{"no auth", "", ""},
		{"basic auth",
			"auth:\n  basic_auth:\n    username: alertmanager\n    password_file: secret\n",
			"        http_config:\n          basic_auth:\n            username: alertmanager\n            password_file: %s\n"},
		{"bearer token",
			"auth:\n  authorization:\n    credentials_file: secret\n",
			"        http_config:\n          authorization:\n            credentials_file: %s\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testAlertmanager(t, bin, tc.amx, tc.alertmanager)
		})
	}
}

func testAlertmanager(t *testing.T, bin, amxAuth, amAuth string) {
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret", "s3cret-"+filepath.Base(dir)+"\n")
	if amAuth != "" {
		amAuth = fmt.Sprintf(amAuth, secret)
	}
	cfg := writeFile(t, dir, "amx.yml", amxAuth+fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", %q, %q]
    max: 1
    resolved_signal: SIGUSR1
`, trapScript, dir))
	a := startAmx(t, "-f", cfg)
	if none := strings.Contains(a.Logs(), " auth=none "); none != (amxAuth == "") {
		t.Errorf("the listening line misreports auth:\n%s", a.Logs())
	}
	if amxAuth != "" {
		if code, answer := post(t, nil, "http://"+a.addr+"/", `{"status":"firing","alerts":[{"labels":{"a":"b"}}]}`); code != 401 {
			t.Fatalf("a notification without credentials: %d %q, want 401", code, answer)
		}
	}

	amAddr := startAlertmanager(t, bin, dir, a.addr, amAuth)

	startsAt := time.Now().UTC()
	postAlert := func(endsAt time.Time) {
		alert := map[string]any{
			"labels":      map[string]string{"alertname": "AmxEndToEnd", "instance": "host1"},
			"annotations": map[string]string{"summary": "end-to-end test"},
			"startsAt":    startsAt.Format(time.RFC3339Nano),
		}
		if !endsAt.IsZero() {
			alert["endsAt"] = endsAt.Format(time.RFC3339Nano)
		}
		postAlerts(t, amAddr, alert)
	}
	postAlert(time.Time{})

	grandchild := runnertest.ReadInt(t, filepath.Join(dir, "grandchild"))
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	fingerprint := strings.TrimSpace(string(runs))
	if len(fingerprint) != 16 {
		t.Fatalf("the command saw fingerprint %q", fingerprint)
	}
	// Wait for Alertmanager's re-send to be skipped as a duplicate of the
	// notification still running, and answered.
	runnertest.Eventually(t, "a re-sent notification skipped as a duplicate", func() bool {
		return metric(t, a, `am_executor_skipped_total{reason="duplicate"}`) >= 1
	})
	postAlert(time.Now().UTC())

	runnertest.Eventually(t, "the command trapped SIGUSR1", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "trapped"))
		return string(b) == "trapped\n"
	})
	runnertest.Eventually(t, "grandchild gone", func() bool { return runnertest.Gone(grandchild) })
	a.waitLog(t, "fingerprint="+fingerprint+" signal=SIGUSR1")
}

func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	return installed(t, "prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
}

// installed returns the path of the first of names found, a program of the
// Debian package pkg. Without it the test skips, except under CI, where
// .ci/run must have installed it.
func installed(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing under CI: .ci/run must install %s", names[0], pkg)
	}
	t.Skipf("%s not installed (apt-get install %s); CI runs this test", names[0], pkg)
	return ""
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestExampleAuth: the example amx and Alertmanager configurations with
// credentials are valid, each to its own program, and agree on them.
func TestExampleAuth(t *testing.T) {
	cfg, err := rules.Load(rules.Source{File: "examples/auth.yml"})
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Auth; a.Username != "alertmanager" || a.Password != "example-password-change-me" ||
		a.Token != "example-token-change-me" || !a.ProtectMetrics {
		t.Errorf("examples/auth.yml: auth %+v", a)
	}
	alertmanagerBinary(t) // amtool comes with it
	out, err := exec.Command("amtool", "check-config", "examples/alertmanager.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("amtool check-config examples/alertmanager.yml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 receivers") {
		t.Errorf("amtool: %s", out)
	}
}

// startAlertmanager runs a real Alertmanager that sends every alert to amx
// at amxAddr, with http_config lines (indented for a webhook config) if
// any, until the test ends, and returns its address.
func startAlertmanager(t *testing.T, bin, dir, amxAddr, httpConfig string) string {
	t.Helper()
	return startAlertmanagerRepeating(t, bin, dir, amxAddr, httpConfig, "1h")
}

// startAlertmanagerRepeating is startAlertmanager with a repeat_interval,
// and cluster flags (without, it runs alone).
func startAlertmanagerRepeating(t *testing.T, bin, dir, amxAddr, httpConfig, repeat string, cluster ...string) string {
	t.Helper()
	amAddr := freeAddr(t)
	if len(cluster) == 0 {
		cluster = []string{"--cluster.listen-address="}
	}
	amCfg := writeFile(t, dir, "alertmanager.yml", fmt.Sprintf(`
route:
  receiver: amx
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: amx
    webhook_configs:
      - url: http://%s/
        send_resolved: true
%s`, repeat, amxAddr, httpConfig))
	am := exec.Command(bin, append([]string{"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
		"--web.listen-address=" + amAddr, "--log.level=debug"}, cluster...)...)
	var amLogs bytes.Buffer
	am.Stdout, am.Stderr = &amLogs, &amLogs
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		am.Process.Kill()
		am.Wait()
		if t.Failed() {
			t.Logf("alertmanager logs:\n%s", amLogs.String())
		}
	})
	runnertest.Eventually(t, "alertmanager ready", func() bool {
		resp, err := http.Get("http://" + amAddr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return amAddr
}

// postAlerts posts alerts to Alertmanager's API, as Prometheus would.
func postAlerts(t *testing.T, amAddr string, alerts ...map[string]any) {
	t.Helper()
	body, _ := json.Marshal(alerts)
	if code, answer := post(t, nil, "http://"+amAddr+"/api/v2/alerts", string(body)); code != 200 {
		t.Fatalf("post alert: %d %s", code, answer)
	}
}

// TestAlertmanagerRetry: amx fails a notification in part; the real
// Alertmanager retries it, and only the command that failed runs again.
func TestAlertmanagerRetry(t *testing.T) {
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo x >> "$0/steady"', %q]
  - cmd: sh
    args: ["-c", 'echo x >> "$0/flaky"; [ "$(wc -l < "$0/flaky")" -gt 1 ]', %[1]q]
`, dir))
	a := startAmx(t, "-f", cfg)
	amAddr := startAlertmanager(t, bin, dir, a.addr, "")
	postAlerts(t, amAddr, map[string]any{"labels": map[string]string{"alertname": "AmxRetry", "instance": "host1"},
		"startsAt": time.Now().UTC().Format(time.RFC3339Nano)})
	runnertest.Eventually(t, "the retry answered 200", func() bool {
		return metric(t, a, `am_executor_notifications_total{code="200",status="firing"}`) >= 1
	})
	if metric(t, a, `am_executor_notifications_total{code="500",status="firing"}`) < 1 {
		t.Error("the first try did not fail")
	}
	read := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.Count(string(b), "x")
	}
	if s, f := read("steady"), read("flaky"); s != 1 || f != 2 {
		t.Errorf("runs: steady %d, flaky %d; want 1 and 2", s, f)
	}
	if metric(t, a, `am_executor_skipped_total{reason="duplicate"}`) < 1 {
		t.Error("the retry's skip of the steady command is not counted")
	}
}

// TestAlertmanagerRepeat: Alertmanager's own repeat, at a repeat_interval
// past the dedupe window, runs a command again, as the old executor did,
// but not a once command.
func TestAlertmanagerRepeat(t *testing.T) {
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
dedupe_window: 1s
commands:
  - cmd: sh
    args: ["-c", 'echo x >> "$0/every"', %q]
  - cmd: sh
    args: ["-c", 'echo x >> "$0/once"', %[1]q]
    once: true
`, dir))
	a := startAmx(t, "-f", cfg)
	amAddr := startAlertmanagerRepeating(t, bin, dir, a.addr, "", "2s")
	postAlerts(t, amAddr, map[string]any{"labels": map[string]string{"alertname": "AmxRepeat", "instance": "host1"},
		"startsAt": time.Now().UTC().Format(time.RFC3339Nano)})
	runnertest.Eventually(t, "two repeats", func() bool { return lines(dir, "every") >= 3 })
	if n := lines(dir, "once"); n != 1 {
		t.Errorf("the once command ran %d times over Alertmanager's repeats, want 1", n)
	}
	if metric(t, a, `am_executor_skipped_total{reason="once"}`) < 2 {
		t.Errorf("the once skips are not counted")
	}
}

// TestAlertmanagerRestart: a notification Alertmanager sends while amx is
// down is not lost: Alertmanager retries, and the restarted amx runs it.
func TestAlertmanagerRestart(t *testing.T) {
	bin := alertmanagerBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo "$AMX_ALERT_LEN" >> "$0/runs"', %q]
`, dir))
	first := startAmx(t, "-f", cfg, "-l", addr)
	amAddr := startAlertmanager(t, bin, dir, addr, "")
	alert := func(instance string) map[string]any {
		return map[string]any{"labels": map[string]string{"alertname": "AmxRestart", "instance": instance},
			"startsAt": time.Now().UTC().Format(time.RFC3339Nano)}
	}
	runs := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "runs"))
		return string(b)
	}
	postAlerts(t, amAddr, alert("host1"))
	runnertest.Eventually(t, "the first notification ran", func() bool { return runs() == "1\n" })

	first.cmd.Process.Signal(syscall.SIGTERM)
	err := <-first.done
	first.done <- err // for its cleanup
	// The group changes while amx is down: Alertmanager's sends fail.
	postAlerts(t, amAddr, alert("host2"))
	runnertest.Eventually(t, "Alertmanager failed to send while amx was down", func() bool {
		resp, err := http.Get("http://" + amAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		s := bufio.NewScanner(resp.Body)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), `alertmanager_notifications_failed_total{integration="webhook"} `); ok {
				return v != "0"
			}
		}
		return false
	})
	startAmx(t, "-f", cfg, "-l", addr)
	runnertest.Eventually(t, "the notification sent while amx was down ran after the restart", func() bool {
		return strings.HasPrefix(runs(), "1\n2\n")
	})
}

// TestLoadAndLeaks sends 10,000 notifications over 100 connections, in two
// rounds: mixed firing and resolved, one in ten with a failing command,
// one in ten for a long command capped by max. Every answer is the one
// expected, max holds exactly, and after each round the server is back to
// its goroutines and file descriptors, its memory not growing round on
// round.
func TestLoadAndLeaks(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: "true"
    match_labels: {kind: ok}
  - cmd: "false"
    match_labels: {kind: fail}
  - cmd: sh
    args: ["-c", 'echo $$ >> "$0/long"; exec sleep 1000', %q]
    match_labels: {kind: long}
    max: 2
    wait: false
    resolved_signal: SIGKILL
`, dir))
	a := startAmx(t, "-f", cfg)
	pid := a.cmd.Process.Pid
	url := "http://" + a.addr + "/"
	notification := func(i int) (body string, want int) {
		kind, status, fp := "ok", "firing", fmt.Sprintf("%016x", i)
		switch i % 10 {
		case 0:
			kind, want = "fail", 500
		case 1:
			status = "resolved"
		case 2:
			kind, fp = "long", "000000000000long"
		}
		if want == 0 {
			want = 200
		}
		// Each notification a new occurrence: copies of one would wait
		// for its answer instead of meeting max.
		startsAt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		return fmt.Sprintf(`{"status":%q,"alerts":[{"status":%[1]q,"fingerprint":%q,"startsAt":%q,"labels":{"kind":%q}}],"commonLabels":{"kind":%[4]q}}`,
			status, fp, startsAt, kind), want
	}
	client := &http.Client{Timeout: deadline, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	round := func(from, to int) {
		jobs := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wrong := 0
		for range 100 {
			wg.Go(func() {
				for i := range jobs {
					body, want := notification(i)
					if got := tryPost(client, url, body); got.code != want {
						mu.Lock()
						if wrong++; wrong <= 5 {
							t.Errorf("notification %d: %d %q, want %d", i, got.code, got.body, want)
						}
						mu.Unlock()
					}
				}
			})
		}
		for i := from; i < to; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		client.CloseIdleConnections()
	}
	fds := func() int { return openFiles(t, pid) }
	settled := func(what string, goroutines, files int) {
		t.Helper()
		runnertest.Eventually(t, what, func() bool {
			return metric(t, a, "go_goroutines") <= float64(goroutines) && fds() <= files
		})
	}
	goroutines0, fds0 := int(metric(t, a, "go_goroutines")), fds()

	round(0, 5000)
	long := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "long"))
		return strings.Count(string(b), "\n")
	}
	if n := long(); n != 2 {
		t.Errorf("%d long processes started, want max = 2", n)
	}
	if got := metric(t, a, `am_executor_skipped_total{reason="fingerover"}`); got != 500-2 {
		t.Errorf("skipped by max: %v, want 498", got)
	}
	// The two long processes hold a wait goroutine and two output readers
	// each; resolve them, and everything is back where it started.
	post(t, nil, url, `{"status":"resolved","alerts":[{"status":"resolved","fingerprint":"000000000000long","labels":{"kind":"long"}}]}`)
	settled("back to the goroutines and files before the load", goroutines0+2, fds0+2)
	rss1 := procStatus(t, pid, "VmRSS")

	round(5000, 10000)
	post(t, nil, url, `{"status":"resolved","alerts":[{"status":"resolved","fingerprint":"000000000000long","labels":{"kind":"long"}}]}`)
	settled("back again after the second round", goroutines0+2, fds0+2)
	rss2 := procStatus(t, pid, "VmRSS")
	t.Logf("goroutines %d, fds %d before; RSS %d kB after round 1, %d kB after round 2", goroutines0, fds0, rss1, rss2)
	if rss2 > rss1+rss1/5+4096 {
		t.Errorf("RSS grew from %d to %d kB between two equal rounds", rss1, rss2)
	}
	if n := long(); n != 4 {
		t.Errorf("%d long processes over both rounds, want 4", n)
	}
}

// TestFiftyThousandAlerts: a 50,000-alert group of about 50 MB runs its
// command (the old executor failed from 5,000 alerts with "argument list
// too long"), which finds every alert in AMX_PAYLOAD_FILE, and amx's
// memory stays under 200 MB.
func TestFiftyThousandAlerts(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
max_body_bytes: 1073741824
commands:
  - cmd: sh
    args: ["-c", 'echo "$AMX_ALERT_LEN $AMX_ALERTS_TRUNCATED $(wc -c < "$AMX_PAYLOAD_FILE")" > "$0/seen"', %q]
`, dir))
	a := startAmx(t, "-f", cfg)
	body := fiftyThousandAlerts()
	if code, answer := post(t, nil, "http://"+a.addr+"/", body); code != 200 {
		t.Fatalf("%d %q", code, answer)
	}
	seen, _ := os.ReadFile(filepath.Join(dir, "seen"))
	if want := fmt.Sprintf("50000 1 %d\n", len(body)); string(seen) != want {
		t.Errorf("the command saw %q, want %q", seen, want)
	}
	kb := procStatus(t, a.cmd.Process.Pid, "VmHWM")
	t.Logf("%.1f MB of JSON; amx peak RSS %d MB", float64(len(body))/1e6, kb/1024)
	if kb > 200<<10 {
		t.Errorf("peak RSS %d MB, want at most 200", kb/1024)
	}
}

// fiftyThousandAlerts is a firing group of 50,000 DiskFull alerts, about
// 48 MB of JSON.
func fiftyThousandAlerts() string {
	var b strings.Builder
	b.WriteString(`{"status":"firing","receiver":"amx","groupKey":"{}:{alertname=\"DiskFull\"}","alerts":[`)
	for i := range 50000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","fingerprint":"%016x","startsAt":"2026-11-25T10:00:00Z","generatorURL":"http://prometheus:9090/graph",`+
			`"labels":{"alertname":"DiskFull","instance":"host-%06d:9100","job":"node","device":"/dev/sda1","mountpoint":"/","severity":"warning","team":"storage"},`+
			`"annotations":{"summary":"Disk / on host-%06d is 95%% full","description":"%s"}}`, i, i, i, strings.Repeat("x", 640))
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestFiftyThousandAlertsThroughLua: the same group through a route whose
// script runs in Lua for every alert, delivered three times to one amx:
// each delivery is answered, and amx's memory stays under 200 MB. (How
// long each takes is the bench's to measure: go run ./bench.)
func TestFiftyThousandAlertsThroughLua(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", `
max_body_bytes: 1073741824
routes:
  - name: page
    match_labels: {alertname: DiskFull}
    lua: |
      local severity = alert.labels.severity
      if severity == "page" then exec("/bin/true", alert.labels.instance) end
`)
	a := startAmx(t, "-f", cfg)
	body := fiftyThousandAlerts()
	for i := range 3 {
		start := time.Now()
		if code, answer := post(t, &http.Client{Timeout: 2 * deadline}, "http://"+a.addr+"/", body); code != 200 {
			t.Fatalf("delivery %d: %d %q", i+1, code, answer)
		}
		t.Logf("delivery %d answered in %v", i+1, time.Since(start).Round(time.Millisecond))
	}
	kb := procStatus(t, a.cmd.Process.Pid, "VmHWM")
	t.Logf("%.1f MB of JSON, three deliveries; amx peak RSS %d MB", float64(len(body))/1e6, kb/1024)
	if kb > 200<<10 {
		t.Errorf("peak RSS %d MB, want at most 200", kb/1024)
	}
}

// procStatus is a field of /proc/<pid>/status in its unit (kB for sizes).
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openFiles is the number of descriptors process pid has open.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// openConns opens n connections to addr that each send head and then
// nothing more; they are closed when the test ends.
func openConns(t *testing.T, addr string, n int, head string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// TestAnnouncedBodies: a client's Content-Length is a claim. Forty
// connections that each announce 32 MiB and send one byte made amx allocate
// 1.3 GiB; now each holds what arrived (rounded up to 64 KiB), and all
// bodies in flight together stay within max_inflight_body_bytes, beyond
// which amx answers 503.
func TestAnnouncedBodies(t *testing.T) {
	dir := t.TempDir()
	t.Run("announced, not sent", func(t *testing.T) {
		a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", "commands: [{cmd: 'true'}]\n"))
		rss0 := procStatus(t, a.cmd.Process.Pid, "VmRSS")
		// Rounds: the memory of closed connections' bodies is reused, and
		// then touched, so that RSS shows what the heap holds.
		for round := range 3 {
			conns := openConns(t, a.addr, 40, "POST / HTTP/1.1\r\nHost: amx\r\nContent-Length: 33554432\r\n\r\n{")
			runnertest.Eventually(t, "40 bodies being read", func() bool {
				return metric(t, a, "am_executor_request_body_bytes_inflight") == 40*64<<10
			})
			heap := metric(t, a, "go_memstats_heap_inuse_bytes")
			t.Logf("round %d: heap in use %.1f MiB", round, heap/(1<<20))
			if heap > 64<<20 {
				t.Errorf("round %d: heap in use %.0f MiB, want under 64", round, heap/(1<<20))
			}
			for _, c := range conns {
				c.Close()
			}
		}
		rss := procStatus(t, a.cmd.Process.Pid, "VmRSS")
		t.Logf("RSS %d kB before, %d kB after three rounds of 40 bodies of 32 MiB announced", rss0, rss)
		if rss-rss0 > 64<<10 {
			t.Errorf("RSS grew by %d kB, want less than 64 MiB", rss-rss0)
		}
	})
	t.Run("in flight together", func(t *testing.T) {
		a := startAmx(t, "-f", writeFile(t, dir, "small.yml",
			"max_body_bytes: 1048576\nmax_inflight_body_bytes: 1MiB\ncommands: [{cmd: 'true'}]\n"))
		url := "http://" + a.addr + "/"
		c := openConns(t, a.addr, 1, "POST / HTTP/1.1\r\nHost: amx\r\nContent-Length: 1048576\r\n\r\n"+
			`{"status":"firing","alerts":[{"labels":{"a":"b"}}],"pad":"`+strings.Repeat("x", 600<<10))[0]
		runnertest.Eventually(t, "the first body to hold the budget", func() bool {
			return metric(t, a, "am_executor_request_body_bytes_inflight") == 1<<20
		})
		if code, body := post(t, nil, url, payload(t, "firing-highlatency.json")); code != 503 ||
			body != "request bodies in flight exceed max_inflight_body_bytes; retry later\n" {
			t.Errorf("while the budget is taken: %d %q, want 503", code, body)
		}
		// The first body ends: its notification runs, and the budget is free.
		rest := 1<<20 - len(`{"status":"firing","alerts":[{"labels":{"a":"b"}}],"pad":"`) - 600<<10
		io.WriteString(c, strings.Repeat("x", rest-2)+`"}`)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the first body's answer: %v %v", resp, err)
		}
		// The body is held until its handler returns, which may be just
		// after the client has read the answer.
		runnertest.Eventually(t, "the first body's budget to be given back", func() bool {
			return metric(t, a, "am_executor_request_body_bytes_inflight") == 0
		})
		if code, body := post(t, nil, url, payload(t, "firing-highlatency.json")); code != 200 {
			t.Errorf("once the budget is free: %d %q, want 200", code, body)
		}
		if n := metric(t, a, `am_executor_errors_total{stage="busy"}`); n != 1 {
			t.Errorf("busy errors = %v, want 1", n)
		}
	})
}

// TestAlertAmplification: a body of empty alerts, or of more alerts than
// max_alerts, is refused at the first one that is too many, at a cost in
// proportion to what amx would have kept (11 million `{}` took 5 GB and 34
// s, then ran the commands).
func TestAlertAmplification(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", fmt.Sprintf("commands: [{cmd: touch, args: [%q]}]\n", marker)))
	url := "http://" + a.addr + "/"
	empty := `{"status":"firing","alerts":[` + strings.Repeat("{},", 10<<20) + "{}]}"
	if code, body := post(t, nil, url, empty); code != 400 || body != "alerts[0]: no \"labels\": an alert has at least one\n" {
		t.Errorf("empty alerts: %d %q", code, body)
	}
	many := `{"status":"firing","alerts":[` + strings.Repeat(`{"labels":{"a":"b"}},`, 300_000) + `{"labels":{"a":"b"}}]}`
	if code, body := post(t, nil, url, many); code != 400 || body != "more than 100000 \"alerts\" in the notification (max_alerts)\n" {
		t.Errorf("300,001 alerts: %d %q", code, body)
	}
	peak := procStatus(t, a.cmd.Process.Pid, "VmHWM")
	t.Logf("peak RSS %d MiB after %d MiB of empty alerts and 300,001 alerts", peak>>10, len(empty)>>20)
	if peak > 200<<10 {
		t.Errorf("peak RSS %d MiB, want under 200", peak>>10)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a refused notification ran its command")
	}
}

// TestIdleConnections: 4,200 idle connections to the always-open /_health
// took every descriptor, and notifications then timed out. Connections are
// capped (max_connections, 1,024 by default) and a notification takes the
// place of one that waits without a request.
func TestIdleConnections(t *testing.T) {
	dir := t.TempDir()
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", "commands: [{cmd: 'true'}]\n"))
	pid := a.cmd.Process.Pid
	fds := func() int { return openFiles(t, pid) }
	fds0 := fds()
	// Kept alive after an answer, and opened but silent.
	health := openConns(t, a.addr, 1100, "GET /_health HTTP/1.1\r\nHost: amx\r\n\r\n")
	for _, c := range health[len(health)-10:] {
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("/_health: %v %v", resp, err)
		}
	}
	openConns(t, a.addr, 1100, "")
	code, body := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-highlatency.json"))
	if code != 200 {
		t.Errorf("a notification among 2,200 idle connections: %d %q", code, body)
	}
	n := fds()
	t.Logf("descriptors: %d before, %d with 2,200 idle connections open", fds0, n)
	if n > fds0+1024+16 {
		t.Errorf("%d descriptors open, want at most max_connections (1024) more than the %d before", n, fds0)
	}
}

// TestThousandProcesses: one notification of 1,000 alerts on a route that
// starts a long process per alert. amx took a thread per process and
// aborted at the unit's task limit, orphaning them; now it runs
// max_processes (256 by default) on a few threads, answers 503 for the
// rest so that Alertmanager retries them, and the resolve ends them all.
func TestThousandProcesses(t *testing.T) {
	dir := t.TempDir()
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", `
routes:
  - name: long
    max: 1
    wait: false
    lua: if alert.status == "firing" then exec("sleep", "1000") end
`))
	pid := a.cmd.Process.Pid
	threads0 := procStatus(t, pid, "Threads")
	alerts := func(status string) string {
		var b strings.Builder
		fmt.Fprintf(&b, `{"status":%q,"alerts":[`, status)
		for i := range 1000 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"status":%q,"fingerprint":"%016x","labels":{"alertname":"Long","n":"%d"}}`, status, i, i)
		}
		b.WriteString("]}")
		return b.String()
	}
	code, body := post(t, nil, "http://"+a.addr+"/", alerts("firing"))
	if code != 503 || body != "744 actions not started: amx runs max_processes already; retry later\n" {
		t.Errorf("answer %d %q", code, body)
	}
	if n := metric(t, a, "am_executor_processes_current"); n != 256 {
		t.Errorf("%v processes running, want 256", n)
	}
	threads := procStatus(t, pid, "Threads")
	t.Logf("threads: %d before, %d with 256 processes running", threads0, threads)
	if threads > threads0+32 {
		t.Errorf("%d threads with 256 processes running, %d before", threads, threads0)
	}
	post(t, nil, "http://"+a.addr+"/", alerts("resolved"))
	runnertest.Eventually(t, "every process to end", func() bool {
		return metric(t, a, "am_executor_processes_current") == 0
	})
}

// TestEnvironmentBudget: every variable counts against the environment's
// budget, the notification's common labels too: 20 common labels of 120
// KiB made every command fail with "argument list too long".
func TestEnvironmentBudget(t *testing.T) {
	dir := t.TempDir()
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo "$AMX_LABEL_L00" | wc -c > "$0/ran"', %q]
routes:
  - name: route
    lua: |
      env("FROM_SCRIPT", string.rep("y", 100000))
      exec("sh", "-c", 'echo "$AMX_ROUTE ${#FROM_SCRIPT}" > "$0/route"', %q)
`, dir, dir)))
	var labels []string
	for i := range 20 {
		labels = append(labels, fmt.Sprintf(`"L%02d":"%s"`, i, strings.Repeat("x", 120<<10)))
	}
	common := "{" + strings.Join(labels, ",") + "}"
	body := fmt.Sprintf(`{"status":"firing","commonLabels":%s,"alerts":[{"status":"firing","fingerprint":"f","labels":%s}]}`, common, common)
	if code, answer := post(t, nil, "http://"+a.addr+"/", body); code != 200 {
		t.Fatalf("answer %d %q", code, answer)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ran")); strings.TrimSpace(string(b)) != strconv.Itoa(120<<10+1) {
		t.Errorf("the command saw AMX_LABEL_L00 of %q bytes", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "route")); string(b) != "route 100000\n" {
		t.Errorf("the route's command wrote %q", b)
	}
	a.waitLog(t, "variables left out of the commands' environment")
}

// TestScriptPanic: a script that overflows gopher-lua's stack raised a
// panic past its PCall: the client got an empty reply, the notification's
// other routes did not run, and the watchdog kept spinning. Now it fails
// its route for its alert, the other route runs, and nothing is left
// running.
func TestScriptPanic(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", fmt.Sprintf(`
lua: {timeout: 20s}
routes:
  - name: unpack
    retry_on_script_error: true
    lua: return select("#", unpack(msg.alerts, 1, 1e8))
  - name: overflow
    retry_on_script_error: true
    lua: |
      local t = {} for i = 1, 7999 do t[i] = i end
      local function f(n, ...) if n == 0 then return 0 end local r = f(n - 1, unpack(t)) return r end
      return f(20)
  - name: other
    lua: exec("touch", %q)
`, marker)))
	goroutines := metric(t, a, "go_goroutines")
	code, body := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-rebootmachine.json"))
	if lines := strings.Split(strings.TrimSpace(body), "\n"); code != 500 || len(lines) != 2 ||
		!strings.HasSuffix(lines[0], "too many results to unpack") || !strings.HasSuffix(lines[1], "registry overflow") {
		t.Errorf("answer %d: %q", code, body)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the other route did not run")
	}
	runnertest.Eventually(t, "the watchdog to stop", func() bool { return metric(t, a, "go_goroutines") <= goroutines })
}

// TestRecordDir: a link planted in the record directory does not steer
// what amx writes, and a directory others may write to is refused at start.
func TestRecordDir(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", "commands: [{cmd: 'true'}]\n")
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o700); err != nil {
		t.Fatal(err)
	}
	target := writeFile(t, dir, "precious", "keep me")
	if err := os.Symlink(target, filepath.Join(rec, ".recording")); err != nil {
		t.Fatal(err)
	}
	a := startAmx(t, "-f", cfg, "--record-dir", rec)
	if code, _ := post(t, nil, "http://"+a.addr+"/", payload(t, "firing-highlatency.json")); code != 200 {
		t.Errorf("answer %d", code)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Errorf("the planted link's target now holds %.40q", b)
	}
	if files, _ := filepath.Glob(filepath.Join(rec, "*.json")); len(files) != 1 {
		t.Errorf("recordings %q, want one", files)
	}

	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777) // past the umask
	out, err := exec.Command(amxBin, "-f", cfg, "-l", "127.0.0.1:0", "--record-dir", open).CombinedOutput()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), "may be written by other users") {
		t.Errorf("a world-writable record directory: %v, %s", err, out)
	}
}

// TestLogBesideConfig: amx -v logging into the directory of its own
// configuration. Each debug line about a change in that directory was a
// change itself: the log grew by megabytes a second, for ever. Now only
// the configuration's files count, the log stays small, and an edit still
// reloads.
func TestLogBesideConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", "commands: [{cmd: 'true'}]\n")
	logFile, err := os.Create(filepath.Join(dir, "amx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(amxBin, "-f", cfg, "-l", "127.0.0.1:0", "-v")
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	logs := func() string {
		b, _ := os.ReadFile(logFile.Name())
		return string(b)
	}
	var addr string
	runnertest.Eventually(t, "amx to listen", func() bool {
		m := listeningRe.FindStringSubmatch(logs())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	if code, _ := post(t, nil, "http://"+addr+"/", payload(t, "firing-highlatency.json")); code != 200 {
		t.Fatalf("answer %d", code)
	}
	writeFile(t, dir, "amx.yml", "commands: [{cmd: 'true'}, {cmd: 'false'}]\n")
	runnertest.Eventually(t, "the edit to reload", func() bool { return strings.Contains(logs(), "configuration reloaded") })
	time.Sleep(time.Second) // what would feed itself has had the time to
	if n := len(logs()); n > 64<<10 {
		t.Errorf("the log grew to %d bytes:\n%.2000s", n, logs())
	}
}
