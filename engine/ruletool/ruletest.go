// Package ruletool holds the commands rule authors run without a server:
// amx check, amx test and amx explain. They decide exactly as the server
// does (engine.Decide) and compare or print the Plan; nothing is spawned.
package ruletool

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner"
)

// Exit codes of amx test, as promtool's.
const (
	ExitPass   = 0
	ExitFailed = 1
	ExitBroken = 2
)

// TestOptions select tests and the report.
type TestOptions struct {
	// Run selects tests by name; nil runs all.
	Run *regexp.Regexp
	// JUnit, when set, is the file a JUnit XML report is written to.
	JUnit string
}

// Test runs rule unit test files and reports to w, promtool style. It
// returns ExitBroken when a file or its configuration cannot be loaded,
// else ExitFailed when a test failed, else ExitPass.
func Test(w io.Writer, files []string, opts TestOptions) int {
	code := ExitPass
	var suites junitSuites
	for _, file := range files {
		fmt.Fprintf(w, "Unit Testing: %s\n", file)
		suite, fileCode := testFile(w, file, opts.Run)
		suites.Suites = append(suites.Suites, suite)
		code = max(code, fileCode)
		fmt.Fprintln(w)
	}
	if opts.JUnit != "" {
		if err := suites.write(opts.JUnit); err != nil {
			fmt.Fprintf(w, "junit: %v\n", err)
			code = max(code, ExitBroken)
		}
	}
	return code
}

func testFile(w io.Writer, file string, run *regexp.Regexp) (junitSuite, int) {
	suite := junitSuite{Name: file}
	broken := func(err error) (junitSuite, int) {
		fmt.Fprintf(w, "  FAILED:\n%s\n", indent(err.Error(), "    "))
		suite.Errors++
		suite.Cases = append(suite.Cases, junitCase{Name: file, Class: file, Error: &junitText{Message: "broken test file", Text: err.Error()}})
		return suite, ExitBroken
	}
	// Every problem at once: the test file's, its configuration's, and
	// the names its tests give that the configuration does not have.
	tf, err := rules.LoadTestFile(file)
	if tf == nil {
		return broken(err)
	}
	var r *engine.Rules
	if tf.Config != "" {
		var cerr error
		if _, r, cerr = engine.Load(rules.Source{File: tf.Config}, nil); cerr != nil {
			err = errors.Join(err, fmt.Errorf("config %s:\n%w", tf.Config, cerr))
		} else {
			err = errors.Join(err, unknownNames(file, tf, r.Set))
		}
	}
	if err != nil {
		return broken(err)
	}
	var failed []string
	code := ExitPass
	for _, t := range tf.Tests {
		if run != nil && !run.MatchString(t.Name) {
			continue
		}
		start := time.Now()
		problems, err := runTest(r, t)
		c := junitCase{Name: t.Name, Class: file, Time: time.Since(start).Seconds()}
		suite.Tests++
		switch {
		case err != nil:
			c.Error = &junitText{Message: "broken test", Text: err.Error()}
			suite.Errors++
			failed = append(failed, fmt.Sprintf("%s:%d: %s: %v", file, t.Line, t.Name, err))
			code = ExitBroken
		case len(problems) > 0:
			text := strings.Join(problems, "\n")
			c.Failure = &junitText{Message: "the plan differs", Text: text}
			suite.Failures++
			failed = append(failed, fmt.Sprintf("name: %s (%s:%d)\n%s", t.Name, file, t.Line, indent(text, "  ")))
			code = max(code, ExitFailed)
		}
		suite.Cases = append(suite.Cases, c)
	}
	if suite.Tests == 0 && run != nil {
		fmt.Fprintf(w, "  FAILED:\n    no test matches --run %q\n", run)
		return suite, ExitFailed
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "  SUCCESS (%s)\n", plural(suite.Tests, "test"))
		return suite, code
	}
	fmt.Fprintf(w, "  FAILED:\n")
	for _, f := range failed {
		fmt.Fprintln(w, indent(f, "    "))
	}
	return suite, code
}

// plural is "1 test", "2 tests".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func indent(text, prefix string) string {
	return prefix + strings.ReplaceAll(text, "\n", "\n"+prefix)
}

// unknownNames reports the routes and commands a test file names that the
// configuration does not have, each with its line.
func unknownNames(file string, tf *rules.TestFile, set *rules.Set) error {
	var errs []error
	check := func(line int, what, name string) {
		if _, ok := processOf(set, name); !ok {
			errs = append(errs, fmt.Errorf("%s:%d: %s: no route or command named %q in %s", file, line, what, name, tf.Config))
		}
	}
	for _, t := range tf.Tests {
		for _, p := range t.Running {
			check(p.Line, "running", p.Route)
		}
		for _, x := range t.Expect.Exec {
			check(x.Line, "expect.exec", x.Route)
		}
		for _, x := range t.Expect.Skip {
			check(x.Line, "expect.skip", x.Route)
		}
		for _, x := range t.Expect.Error {
			check(x.Line, "expect.error", x.Route)
		}
	}
	return errors.Join(errs...)
}

// runTest decides a test's notification and compares the outcome with what
// it expects. The error is a broken test (a payload that cannot be read, a
// running process of an unknown route); problems are the differences.
func runTest(r *engine.Rules, t *rules.Test) (problems []string, err error) {
	msg, err := notification(t)
	if err != nil {
		return nil, err
	}
	scratch := state.NewMemory(state.Options{})
	defer scratch.Close()
	if err := seed(r.Set, scratch, t); err != nil {
		return nil, err
	}
	plan := engine.Decide(context.Background(), r, msg, engine.StateReader(context.Background(), scratch))
	out, err := simulate(r.Set, scratch, plan, t.Running)
	if err != nil {
		return nil, err
	}
	problems = append(problems, compareExec(r.Set, t.Expect, out.execs)...)
	problems = append(problems, compareSkips(t.Expect.Skip, out.skips)...)
	problems = append(problems, compareSignals(t.Expect.Signal, out.signals)...)
	problems = append(problems, compareErrors(t.Expect.Error, plan.Errors)...)
	return problems, nil
}

// outcome is what the runner would do with a Plan, given live processes.
type outcome struct {
	execs   []runner.Action // the actions that would start
	skips   []skip
	signals []signal
}

type skip struct{ route, reason string }

func (s skip) String() string { return s.route + ": " + s.reason }

type signal struct {
	fingerprint string
	sig         syscall.Signal
}

func (s signal) String() string { return s.fingerprint + ": " + rules.SignalName(s.sig) }

// simulate applies the server's admission to a Plan over the test's
// scratch state, without running anything: live processes bound to a
// resolved alert get their rule's resolved_signal, and each action is
// admitted by engine.Admit, the step the server takes, counting the
// processes the test says are running. max_processes, a limit of the
// host, is not simulated.
func simulate(set *rules.Set, scratch state.Store, plan engine.Plan, running []rules.Running) (outcome, error) {
	var out outcome
	for _, s := range plan.Skips {
		reason := s.Reason
		if s.Reason == engine.SkipLua {
			reason = s.Detail
		}
		out.skips = append(out.skips, skip{s.Name, reason})
	}
	var leases []state.Claim
	for _, p := range running {
		proc, ok := processOf(set, p.Route)
		switch {
		case !ok:
			return out, fmt.Errorf("line %d: running: no route or command named %q in the configuration", p.Line, p.Route)
		case p.Fingerprint == "" && p.Key == "":
			return out, fmt.Errorf("line %d: running: give the fingerprint the process is bound to, or its key: max counts per key", p.Line)
		}
		if slices.Contains(plan.Resolved, p.Fingerprint) && !proc.IgnoreResolved {
			out.signals = append(out.signals, signal{p.Fingerprint, proc.ResolvedSignal})
		}
		leases = append(leases, actionsOf(set, plan, p)...)
	}
	// A claim without an ID takes a lease and nothing else.
	if _, err := scratch.Admit(context.Background(), state.Batch{Claims: leases}); err != nil {
		return out, err
	}
	adm, err := engine.Admit(context.Background(), scratch, &plan, 0, nil)
	if err != nil {
		return out, err
	}
	for i, a := range plan.Actions {
		if reason := adm.Reasons[i]; reason != "" {
			out.skips = append(out.skips, skip{a.Name, reason})
			continue
		}
		out.execs = append(out.execs, a)
	}
	return out, nil
}

// actionsOf are the actions (and keys) a running process or a recent start
// of a test stands for: a classic command's by its command line, a route's
// by its command and arguments (only its command when keyed), or, when the
// test leaves those out, every action of the plan of its route for its
// fingerprint or key.
func actionsOf(set *rules.Set, plan engine.Plan, p rules.Running) []state.Claim {
	key := cmp.Or(p.Key, p.Fingerprint)
	if action := engine.CommandAction(set, p.Route); action != "" {
		return []state.Claim{{Action: action, Key: key}}
	}
	keyed := p.Key != ""
	if r, ok := routeOf(set, p.Route); ok && len(r.By) > 0 {
		keyed = true
	}
	if p.Cmd != "" && (p.HasArgs || keyed) {
		return []state.Claim{{Action: engine.RouteAction(p.Route, p.Cmd, p.Args, keyed), Key: key}}
	}
	var out []state.Claim
	seen := map[[2]string]bool{}
	for i, a := range plan.Actions {
		c := plan.Claims[i]
		if a.Name != p.Route || (p.Fingerprint != "" && a.Fingerprint != p.Fingerprint) || (p.Key != "" && c.Key != p.Key) ||
			(p.Cmd != "" && expectedCmd(set, p.Route, p.Cmd) != a.Cmd) || (p.HasArgs && !slices.Equal(p.Args, a.Args)) {
			continue
		}
		if k := [2]string{c.Action, c.Key}; !seen[k] {
			seen[k] = true
			out = append(out, state.Claim{Action: c.Action, Key: c.Key})
		}
	}
	return out
}

// seed puts a test's state into its scratch store: script values, and
// starts within their cooldown (as a cooldown that never ends).
func seed(set *rules.Set, scratch state.Store, t *rules.Test) error {
	var b state.Batch
	for route, values := range t.State.Values {
		w := state.Writes{ID: "seed/" + route, Namespace: route}
		for k, v := range values {
			var val state.Value
			switch v := v.(type) {
			case int:
				val = state.Value{Num: float64(v), IsNum: true}
			case float64:
				val = state.Value{Num: v, IsNum: true}
			case string:
				val = state.Value{Str: v}
			default:
				return fmt.Errorf("line %d: state.values: %s: %s: want a number or a string", t.Line, route, k)
			}
			w.Ops = append(w.Ops, state.Write{Op: "set", Key: k, Value: val})
		}
		b.Writes = append(b.Writes, w)
	}
	for i, p := range t.State.Cooldown {
		if _, ok := processOf(set, p.Route); !ok {
			return fmt.Errorf("line %d: state.cooldown: no route or command named %q in the configuration", p.Line, p.Route)
		}
		if p.Cmd == "" && engine.CommandAction(set, p.Route) == "" {
			return fmt.Errorf("line %d: state.cooldown: give the command the route started", p.Line)
		}
		if p.Key == "" && p.Fingerprint == "" {
			return fmt.Errorf("line %d: state.cooldown: give the key (or fingerprint) the action started for", p.Line)
		}
		for _, c := range actionsOf(set, engine.Plan{}, p) {
			c.ID, c.Cooldown = fmt.Sprint("seed/", i), 100*365*24*time.Hour
			b.Claims = append(b.Claims, c)
		}
	}
	adm, err := scratch.Admit(context.Background(), b)
	for _, v := range adm.Verdicts {
		scratch.Release(v.Lease)
	}
	return err
}

// routeOf finds a route by its name.
func routeOf(set *rules.Set, name string) (*rules.Route, bool) {
	for _, r := range set.Routes {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// processOf finds a route, or a classic command by its name ("commands[0]").
func processOf(set *rules.Set, name string) (*rules.Process, bool) {
	for _, r := range set.Routes {
		if r.Name == name {
			return &r.Process, true
		}
	}
	for _, c := range set.Commands {
		if c.Name == name {
			return &c.Process, true
		}
	}
	return nil, false
}

func compareExec(set *rules.Set, exp rules.Expect, got []runner.Action) []string {
	used := make([]bool, len(got))
	var missing []rules.ExpectExec
	for _, x := range exp.Exec {
		found := false
		for i, a := range got {
			if !used[i] && matchExec(set, x, a) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, x)
		}
	}
	unexpected := 0
	for _, u := range used {
		if !u {
			unexpected++
		}
	}
	if len(missing) == 0 && (unexpected == 0 || !exp.ExecExact) {
		return nil
	}
	// Show the expected environment keys of the actions that ran.
	keys := make(map[string]bool)
	var b strings.Builder
	b.WriteString("exec:\n  exp:\n")
	for _, x := range exp.Exec {
		fmt.Fprintf(&b, "    - %s\n", expString(x))
		for k := range x.Env {
			keys[k] = true
		}
	}
	if len(exp.Exec) == 0 {
		b.WriteString("    (nothing)\n")
	}
	b.WriteString("  got:\n")
	for _, a := range got {
		fmt.Fprintf(&b, "    - %s\n", actionString(a, keys))
	}
	if len(got) == 0 {
		b.WriteString("    (nothing)\n")
	}
	for _, x := range missing {
		fmt.Fprintf(&b, "  missing (line %d): %s\n", x.Line, expString(x))
	}
	if exp.ExecExact {
		for i, a := range got {
			if !used[i] {
				fmt.Fprintf(&b, "  unexpected: %s\n", actionString(a, keys))
			}
		}
	}
	return []string{strings.TrimSuffix(b.String(), "\n")}
}

func matchExec(set *rules.Set, x rules.ExpectExec, a runner.Action) bool {
	if x.Route != a.Name || (x.Fingerprint != "" && x.Fingerprint != a.Fingerprint) {
		return false
	}
	if x.Cmd != "" && expectedCmd(set, x.Route, x.Cmd) != a.Cmd {
		return false
	}
	if x.HasArgs && !slices.Equal(x.Args, a.Args) {
		return false
	}
	env := envMap(a.Environ())
	for k, v := range x.Env {
		if got, ok := env[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// expectedCmd resolves a command a test names as its route resolves it.
func expectedCmd(set *rules.Set, route, cmd string) string {
	for _, r := range set.Routes {
		if r.Name == route {
			return r.Command(cmd)
		}
	}
	return cmd
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func expString(x rules.ExpectExec) string {
	var b strings.Builder
	b.WriteString(x.Route + ":")
	if x.Cmd != "" {
		b.WriteString(" " + x.Cmd)
	}
	if x.HasArgs {
		fmt.Fprintf(&b, " %q", x.Args)
	}
	if x.Fingerprint != "" {
		b.WriteString(" fingerprint=" + x.Fingerprint)
	}
	for _, k := range slices.Sorted(maps.Keys(x.Env)) {
		fmt.Fprintf(&b, " %s=%q", k, x.Env[k])
	}
	return b.String()
}

func actionString(a runner.Action, keys map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %q fingerprint=%s", a.Name, a.Cmd, a.Args, a.Fingerprint)
	env := envMap(a.Environ())
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if v, ok := env[k]; ok {
			fmt.Fprintf(&b, " %s=%q", k, v)
		} else {
			fmt.Fprintf(&b, " %s unset", k)
		}
	}
	return b.String()
}

func compareSkips(exp []rules.ExpectSkip, got []skip) []string {
	var missing []string
	for _, x := range exp {
		if !slices.ContainsFunc(got, func(s skip) bool { return s.route == x.Route && (x.Reason == "" || s.reason == x.Reason) }) {
			missing = append(missing, fmt.Sprintf("  missing (line %d): %s", x.Line, skip{x.Route, x.Reason}))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{"skip:\n" + strings.Join(missing, "\n") + "\n  got:\n" + list(got)}
}

func compareSignals(exp []rules.ExpectSignal, got []signal) []string {
	want := make([]signal, len(exp))
	for i, x := range exp {
		want[i] = signal{x.Fingerprint, x.Signal}
	}
	cmp := func(a, b signal) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(want, cmp)
	slices.SortFunc(got, cmp)
	if slices.Equal(want, got) {
		return nil
	}
	return []string{"signal:\n  exp:\n" + list(want) + "\n  got:\n" + list(got)}
}

func compareErrors(exp []rules.ExpectError, got []engine.RouteError) []string {
	used := make([]bool, len(got))
	var b strings.Builder
	for _, x := range exp {
		i := slices.IndexFunc(got, func(e engine.RouteError) bool {
			return e.Route == x.Route && strings.Contains(e.Err.Msg, x.Message)
		})
		if i < 0 {
			fmt.Fprintf(&b, "  missing (line %d): %s: %s\n", x.Line, x.Route, x.Message)
			continue
		}
		used[i] = true
	}
	for i, e := range got {
		if !used[i] {
			fmt.Fprintf(&b, "  unexpected: %s (fingerprint %s): %s\n", e.Route, e.Fingerprint, e.Err.Msg)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return []string{"error:\n" + strings.TrimSuffix(b.String(), "\n")}
}

func list[T fmt.Stringer](items []T) string {
	if len(items) == 0 {
		return "    (nothing)"
	}
	lines := make([]string, len(items))
	for i, it := range items {
		lines[i] = "    - " + it.String()
	}
	return strings.Join(lines, "\n")
}

// junitSuites is a JUnit XML report, as CI systems read it.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name    string     `xml:"name,attr"`
	Class   string     `xml:"classname,attr"`
	Time    float64    `xml:"time,attr"`
	Failure *junitText `xml:"failure,omitempty"`
	Error   *junitText `xml:"error,omitempty"`
}

type junitText struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func (s *junitSuites) write(file string) error {
	out, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append([]byte(xml.Header), append(out, '\n')...), 0o644)
}
