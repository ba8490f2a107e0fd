package ruletool

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./engine/ruletool -update rewrites it)\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

// TestExamples runs the example rule tests, as `amx test examples/tests/*.yml`.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/tests/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example tests: %v", err)
	}
	var out bytes.Buffer
	if code := Test(&out, files, TestOptions{}); code != ExitPass {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	if n := strings.Count(out.String(), "SUCCESS"); n != len(files) {
		t.Errorf("%d of %d files succeeded:\n%s", n, len(files), out.String())
	}
}

func TestFailingAndBroken(t *testing.T) {
	for _, tc := range []struct {
		file string
		code int
	}{
		{"testdata/failing.yml", ExitFailed},
		{"testdata/broken.yml", ExitBroken},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			if code := Test(&out, []string{tc.file}, TestOptions{}); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			golden(t, strings.TrimSuffix(filepath.Base(tc.file), ".yml")+".golden", out.String())
		})
	}
}

// TestRunAndJUnit: --run selects tests by name, and the JUnit report is
// well-formed XML with the counts and the failure text.
func TestRunAndJUnit(t *testing.T) {
	var out bytes.Buffer
	if code := Test(&out, []string{"testdata/failing.yml"}, TestOptions{Run: regexp.MustCompile("^pass")}); code != ExitPass {
		t.Errorf("--run ^pass: exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "SUCCESS (1 test)\n") {
		t.Errorf("--run ^pass ran other tests:\n%s", out.String())
	}
	out.Reset()
	if code := Test(&out, []string{"testdata/failing.yml"}, TestOptions{Run: regexp.MustCompile("^nothing")}); code != ExitFailed ||
		!strings.Contains(out.String(), `no test matches --run "^nothing"`) {
		t.Errorf("--run matching no test: exit %d:\n%s", code, out.String())
	}

	report := filepath.Join(t.TempDir(), "junit.xml")
	out.Reset()
	code := Test(&out, []string{"testdata/failing.yml", "testdata/broken.yml"}, TestOptions{JUnit: report})
	if code != ExitBroken {
		t.Errorf("exit %d, want %d", code, ExitBroken)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("invalid XML: %v\n%s", err, data)
	}
	if len(got.Suites) != 2 {
		t.Fatalf("%d suites", len(got.Suites))
	}
	s := got.Suites[0]
	if s.Tests != 3 || s.Failures != 2 || s.Errors != 0 || len(s.Cases) != 3 {
		t.Errorf("suite %s: tests=%d failures=%d errors=%d cases=%d, want 3, 2, 0, 3", s.Name, s.Tests, s.Failures, s.Errors, len(s.Cases))
	}
	if c := s.Cases[1]; c.Failure == nil || !strings.Contains(c.Failure.Text, `missing (line 11): restart: systemctl ["restart" "web"]`) {
		t.Errorf("case %q: failure %+v", c.Name, c.Failure)
	}
	if b := got.Suites[1]; b.Errors != 1 || b.Cases[0].Error == nil || !strings.Contains(b.Cases[0].Error.Text, "broken.yml:5:31: ") {
		t.Errorf("broken suite: %+v", b)
	}
}

// TestFingerprint computes Alertmanager's fingerprint of every recorded
// alert's labels and compares it with the one Alertmanager sent.
func TestFingerprint(t *testing.T) {
	files, _ := filepath.Glob("../../examples/payloads/*.json")
	n := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m engine.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for _, a := range m.Alerts {
			if got := Fingerprint(a.Labels); got != a.Fingerprint {
				t.Errorf("%s: Fingerprint(%v) = %s, Alertmanager sent %s", f, a.Labels, got, a.Fingerprint)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d alerts compared", n)
	}
}

func TestCheck(t *testing.T) {
	var out bytes.Buffer
	if !Check(&out, []string{"../../examples/rules.yml"}) {
		t.Errorf("examples/rules.yml failed:\n%s", out.String())
	}
	if Check(&out, []string{"../../rules/testdata/bad-routes.yml"}) {
		t.Error("bad-routes.yml passed")
	}
	golden(t, "check.golden", out.String())
}

func TestExplain(t *testing.T) {
	cfg, err := rules.Load(rules.Source{File: "../../examples/rules.yml"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := engine.Compile(cfg.Set, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../../examples/payloads/firing-diskfull-one-alert-resolved.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !Explain(&out, r, m, false, nil) {
		t.Error("Explain reports a failed script")
	}
	golden(t, "explain.golden", out.String())
	out.Reset()
	Explain(&out, r, m, true, nil)
	if !strings.Contains(out.String(), "      AMX_ALERT_LEN=2\n") {
		t.Errorf("--env does not print the AMX_* environment:\n%s", out.String())
	}
}

// TestExplainExtras: explain shows the settings that differ from the
// defaults: wait, stdin and kill_after.
func TestExplainExtras(t *testing.T) {
	var b strings.Builder
	plan := engine.Plan{Actions: []runner.Action{
		{Name: "plain", Cmd: "a"},
		{Name: "extra", Cmd: "b", NoWait: true, PayloadStdin: true, Signal: syscall.SIGTERM, KillAfter: 0},
	}}
	plan.Claims = []state.Claim{{}, {Key: "db1", Max: 1, Once: true, Cooldown: time.Hour, Rate: state.RateLimit{N: 5, Per: 10 * time.Minute}}}
	adm := engine.Admission{Reasons: []string{"", state.Cooldown}}
	printActions(&b, plan, adm, "plain", "", false)
	printActions(&b, plan, adm, "extra", "", false)
	want := `    exec: a []
      fingerprint=(none) key=(none) max=0 resolved_signal=SIGKILL ignore_resolved=false notify_on_failure=false timeout=0s wait=true
    exec: b []
      skip: cooldown
      fingerprint=(none) key=db1 max=1 resolved_signal=SIGTERM ignore_resolved=false notify_on_failure=false timeout=0s wait=false stdin=payload kill_after=0s once=true cooldown=1h0m0s rate=5/10m0s
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestSimulateAdmitsAsTheServer: amx test admits with the server's own
// step (engine.Admit): an action without a fingerprint is not capped, a
// running classic command counts for every command with its command line,
// and a running process must say which fingerprint or key it is bound to.
func TestSimulateAdmitsAsTheServer(t *testing.T) {
	set := &rules.Set{Commands: []*rules.Command{
		{Name: "commands[0]", Cmd: "reboot", Process: rules.Process{Max: 1}},
		{Name: "commands[1]", Cmd: "reboot", Process: rules.Process{Max: 1, MatchLabels: map[string]string{"a": "b"}}},
	}}
	var plan engine.Plan
	for i, a := range []struct{ name, fp string }{{"commands[1]", "f"}, {"commands[0]", ""}, {"commands[0]", ""}} {
		plan.Actions = append(plan.Actions, runner.Action{Name: a.name, Cmd: "reboot", Fingerprint: a.fp})
		max := 1
		if a.fp == "" {
			max = 0
		}
		plan.Claims = append(plan.Claims, state.Claim{ID: fmt.Sprint(i), Action: engine.CommandAction(set, a.name), Key: a.fp, Max: max})
	}
	scratch := state.NewMemory(state.Options{})
	defer scratch.Close()
	out, err := simulate(set, scratch, plan, []rules.Running{{Route: "commands[0]", Fingerprint: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.execs) != 2 || len(out.skips) != 1 || out.skips[0] != (skip{"commands[1]", engine.SkipFingerOver}) {
		t.Errorf("execs %d, skips %v: want the unbound two run and commands[1] skipped by commands[0]'s process", len(out.execs), out.skips)
	}
	_, err = simulate(set, scratch, plan, []rules.Running{{Route: "commands[0]", Line: 7}})
	if err == nil || err.Error() != "line 7: running: give the fingerprint the process is bound to, or its key: max counts per key" {
		t.Errorf("a running process without fingerprint: %v", err)
	}
}

// TestExplainLogsAndErrors: explain shows what a script wrote with log()
// under its alert, and reports a failed script.
func TestExplainLogsAndErrors(t *testing.T) {
	set := &rules.Set{Routes: []*rules.Route{
		{Name: "talk", ScriptName: "talk.lua", Source: "log('saw', alert.labels.instance)\nlog('twice')", Process: rules.DefaultProcess()},
		{Name: "fail", ScriptName: "fail.lua", Source: "error('bug', 0)", Process: rules.DefaultProcess()},
	}}
	logs := new(ScriptLogs)
	r, err := engine.Compile(set, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Decode([]byte(`{"status":"firing","alerts":[{"fingerprint":"f1","labels":{"instance":"db1"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if Explain(&out, r, m, false, logs) {
		t.Error("Explain reports no failure")
	}
	for _, want := range []string{"  alert f1: script ran\n    log: line 1: saw db1\n    log: line 2: twice\n", "    error (error): fail.lua: bug\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBrokenTestFileAllAtOnce: a test file's problems, a missing payload and
// names the configuration does not have, are reported together with
// their lines.
func TestBrokenTestFileAllAtOnce(t *testing.T) {
	var out bytes.Buffer
	if code := Test(&out, []string{"testdata/broken-names.yml"}, TestOptions{}); code != ExitBroken {
		t.Errorf("exit %d, want %d", code, ExitBroken)
	}
	for _, want := range []string{
		"testdata/broken-names.yml:4:14: tests[0].payload: stat testdata/no-such-payload.json: no such file or directory",
		`testdata/broken-names.yml:5: running: no route or command named "ghost" in testdata/amx.yml`,
		`testdata/broken-names.yml:7: expect.exec: no route or command named "restrat" in testdata/amx.yml`,
		`testdata/broken-names.yml:8: expect.skip: no route or command named "nobody" in testdata/amx.yml`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
