package luaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

func notification() *Notification {
	return &Notification{
		Receiver: "executor", Status: "firing", GroupKey: "{}:{alertname=\"DiskFull\"}",
		GroupLabels:  map[string]string{"alertname": "DiskFull"},
		CommonLabels: map[string]string{"alertname": "DiskFull", "job": "node"},
		ExternalURL:  "http://am:9093", TruncatedAlerts: 1,
		Alerts: []Alert{
			{Status: "firing", Fingerprint: "0aa7859a3dd8b47b", StartsAt: 1795516111,
				Labels:      map[string]string{"alertname": "DiskFull", "instance": "db1:9100", "mountpoint": "/var"},
				Annotations: map[string]string{"runbook_url": "https://runbooks.example/disk"}},
			{Status: "resolved", Fingerprint: "8bc64ed21b99e322", StartsAt: 1795516058, EndsAt: 1795516058,
				Labels: map[string]string{"alertname": "DiskFull", "instance": "db2:9100"}},
		},
	}
}

func run(t *testing.T, src string) (Result, error) {
	t.Helper()
	s, err := Compile("rule.lua", src)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return NewVM(time.Second, 0, nil).Run(context.Background(), s, "route", notification(), 0)
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"exec('a')\nexec('b')\nlocal = 3", "rule.lua:3: syntax error near '='"},
		{"if x then\n  exec('a')\n", "rule.lua:2: syntax error at the end of the script"},
	} {
		_, err := Compile("rule.lua", tc.src)
		if err == nil || err.Error() != tc.err {
			t.Errorf("Compile(%q) = %v, want %q", tc.src, err, tc.err)
		}
	}
}

func TestHostFunctions(t *testing.T) {
	res, err := run(t, `
env("RUNBOOK", alert.annotations.runbook_url)
env("PORT", 9100)
exec("/usr/local/bin/cleanup", alert.labels.instance, alert.labels.mountpoint, 3)
exec{"/bin/page", "--urgent", max = 1, resolved_signal = "term", ignore_resolved = true,
     notify_on_failure = false, timeout = "10m", stdin = msg.group_key}
exec{"x", timeout = 1.5}
`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Env, []string{"RUNBOOK=https://runbooks.example/disk", "PORT=9100"}) {
		t.Errorf("env = %q", res.Env)
	}
	if len(res.Execs) != 3 {
		t.Fatalf("execs = %+v", res.Execs)
	}
	e := res.Execs[0]
	if e.Cmd != "/usr/local/bin/cleanup" || !slices.Equal(e.Args, []string{"db1:9100", "/var", "3"}) ||
		e.Max != nil || e.Timeout != nil {
		t.Errorf("exec 1 = %+v", e)
	}
	e = res.Execs[1]
	if e.Cmd != "/bin/page" || !slices.Equal(e.Args, []string{"--urgent"}) || *e.Max != 1 ||
		*e.ResolvedSignal != int(syscall.SIGTERM) || !*e.IgnoreResolved || *e.NotifyOnFailure ||
		*e.Timeout != 10*time.Minute || *e.Stdin != `{}:{alertname="DiskFull"}` {
		t.Errorf("exec 2 = %+v", e)
	}
	if *res.Execs[2].Timeout != 1500*time.Millisecond {
		t.Errorf("timeout in seconds = %v", *res.Execs[2].Timeout)
	}
}

func TestTables(t *testing.T) {
	res, err := run(t, `
local a = msg.alerts
assert(#a == 2 and a[2].status == "resolved" and a[2].ends_at == 1795516058, "alerts")
assert(a[1].fingerprint == alert.fingerprint and alert.starts_at == 1795516111 and alert.ends_at == 0, "alert")
assert(msg.receiver == "executor" and msg.status == "firing" and msg.external_url == "http://am:9093", "msg")
assert(msg.truncated_alerts == 1 and msg.group_labels.alertname == "DiskFull", "group")
assert(msg.common_labels.job == "node" and next(msg.common_annotations) == nil, "common")
assert(msg.alerts == a, "alerts built once")
assert(msg.nothing == nil)
exec("ok")
`)
	if err != nil || len(res.Execs) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
}

// TestPlainTables: alert and msg start as proxies, but a script cannot tell
// them from the plain tables they stand for.
func TestPlainTables(t *testing.T) {
	res, err := run(t, `
assert(getmetatable(alert) == nil and getmetatable(alert.labels) == nil, "metatable")
assert(alert.labels == alert.labels and msg.alerts[1].labels == msg.alerts[1].labels, "same table")
local n = 0
for k, v in pairs(alert.labels) do n = n + 1 assert(alert.labels[k] == v) end
assert(n == 3, "pairs saw " .. n .. " labels")
assert(rawget(alert, "status") == "firing" and next(msg.group_labels) == "alertname", "rawget, next")
local seen = {}
for k in pairs(msg) do seen[#seen + 1] = k end
table.sort(seen)
assert(table.concat(seen, ",") == "alerts,common_annotations,common_labels,external_url,group_key,group_labels,receiver,status,truncated_alerts", table.concat(seen, ","))

-- Writes, deletes and metatables behave as on any table.
alert.annotations.runbook_url = nil
assert(alert.annotations.runbook_url == nil and next(alert.annotations) == nil, "delete")
local a2 = msg.alerts[2]
a2.labels.instance = nil
assert(a2.labels.instance == nil and a2.labels.alertname == "DiskFull", "delete before any read")
rawset(msg.common_labels, "job", nil)
assert(msg.common_labels.job == nil, "rawset")
local l = setmetatable(msg.alerts[1].labels, {__index = function() return "default" end})
assert(l.instance == "db1:9100" and l.nothing == "default", "setmetatable")
table.insert(alert.labels, "x")
assert(alert.labels[1] == "x" and alert.labels.mountpoint == "/var", "table.insert")
alert.status = nil
assert(alert.status == nil and alert.fingerprint == "0aa7859a3dd8b47b", "alert delete")
exec("ok")
`)
	if err != nil || len(res.Execs) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestSkip(t *testing.T) {
	res, err := run(t, `exec("a") skip("maintenance window") exec("b")`)
	if err != nil || !res.Skipped || res.SkipReason != "maintenance window" || len(res.Execs) != 0 {
		t.Errorf("%v %+v", err, res)
	}
	// Catching the skip does not undo it.
	res, err = run(t, `pcall(skip, "caught") exec("c")`)
	if err != nil || !res.Skipped || len(res.Execs) != 0 {
		t.Errorf("pcall(skip): %v %+v", err, res)
	}
}

// TestSkipStatements: a skip statement of the main chunk, which Compile
// turns into a return, ends the script exactly as skip() raising does.
func TestSkipStatements(t *testing.T) {
	for _, tc := range []struct {
		src       string
		rewritten bool
	}{
		{`exec("a") skip("maintenance window") error("not reached")`, true},
		{`skip()`, true},
		{`skip "no parentheses"`, true},
		{`if alert.labels.instance == "db1:9100" then skip("db1") end exec("a")`, true},
		{`for i = 1, 3 do exec("a", i) if i == 2 then skip("at " .. i) end end`, true},
		{`local n = 0 while true do n = n + 1 if n > 2 then skip("loop") end end`, true},
		{`repeat local x = 1 skip("repeat") until x == 1`, true},
		{`for _, v in ipairs({"first", "second"}) do do skip(v) end end`, true},
		{`local function f() skip("in a function") end f() exec("b")`, false},
		{`pcall(skip, "caught") exec("c")`, false},
		{`local skip = function(r) exec("local", r) end skip("x") exec("d")`, false},
		{`for _, skip in ipairs({print}) do end skip("a loop variable elsewhere") exec("e")`, false},
		{`skip = function(r) exec("replaced", r) end skip("x") exec("f")`, true},
		{`skip = nil skip("x")`, true},
		{`skip = 5 skip("x")`, true},
		{`skip(42)`, true},
		{`skip({})`, true},
		{`exec("a") skip(nil, "extra") exec("b")`, true},
		{`skip(error("in the reason"))`, true},
	} {
		src := tc.src
		slow, err := compile("rule.lua", src, false)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := compile("rule.lua", src, true)
		if err != nil {
			t.Fatal(err)
		}
		if rewritten := mentions(fast.proto, skipReturnName); rewritten != tc.rewritten {
			t.Errorf("%s: rewritten %v, want %v", src, rewritten, tc.rewritten)
		}
		compareRewrite(t, src, slow, fast)
	}
}

// mentions reports whether a compiled function or one within it uses the
// global name.
func mentions(p *lua.FunctionProto, name string) bool {
	return slices.Contains(p.Constants, lua.LValue(lua.LString(name))) ||
		slices.ContainsFunc(p.FunctionPrototypes, func(p *lua.FunctionProto) bool { return mentions(p, name) })
}

// rewritten compiles src as written (slow) and rewritten (fast), and
// checks that the rewrite introduced a call of host function name or not,
// as want says.
func rewritten(t *testing.T, src, name string, want bool) (slow, fast *Script) {
	t.Helper()
	slow, err := compile("rule.lua", src, false)
	if err != nil {
		t.Fatal(err)
	}
	fast, err = compile("rule.lua", src, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := mentions(fast.proto, name) && !mentions(slow.proto, name); got != want {
		t.Errorf("%s: rewritten %v, want %v", src, got, want)
	}
	return slow, fast
}

// compareRewrite checks that a script gives the same result and error
// with calls rewritten (fast) and as written (slow).
func compareRewrite(t *testing.T, src string, slow, fast *Script) {
	t.Helper()
	vm := NewVM(time.Second, 0, nil)
	want, wantErr := vm.Run(context.Background(), slow, "route", notification(), 0)
	got, gotErr := vm.Run(context.Background(), fast, "route", notification(), 0)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\nrewritten:  %+v %v\nas written: %+v %v", src, got, gotErr, want, wantErr)
	}
}

// TestExecFieldsRegisters: a script whose exec{} compiles only as written,
// for want of registers, still compiles.
func TestExecFieldsRegisters(t *testing.T) {
	var src strings.Builder
	for i := range 190 {
		fmt.Fprintf(&src, "local v%d = %d\n", i, i)
	}
	src.WriteString(`exec{"a", v189, max = 1, timeout = "1m", wait = false, stdin = "x", ignore_resolved = true,
		notify_on_failure = false, resolved_signal = "TERM"}`)
	res, err := run(t, src.String())
	if err != nil || len(res.Execs) != 1 || !slices.Equal(res.Execs[0].Args, []string{"189"}) || *res.Execs[0].Max != 1 {
		t.Errorf("%+v %v", res, err)
	}
}

// TestExecFields: exec{...}, which Compile turns into a call with the
// table's fields as arguments, behaves exactly as with the table.
func TestExecFields(t *testing.T) {
	for _, tc := range []struct {
		src       string
		rewritten bool
	}{
		{`exec{"a", "b", max = 1, timeout = "10m", resolved_signal = "SIGTERM", ignore_resolved = true,
		       notify_on_failure = false, stdin = "x", wait = false}`, true},
		// Two unknown options: a table has bogus after other, since its
		// first value was nil (FuzzRewrite found this).
		{`exec{"a", bogus = nothing, other = 1, bogus = false}`, true},
		{`exec{"a", 2, 3.5, -1e300}`, true},
		{`exec({"a", "b"})`, true},
		{`exec{"a"} exec{"b", wait = false} exec("c")`, true},
		{`exec{"a", max = 1, max = 2}`, true},
		{`exec{"a", max = -1, max = 1}`, true},
		{`exec{"a", max = 1, max = nil}`, true},
		{`exec{"a", ["max"] = 1}`, true},
		{`exec{"a", nil, "c"}`, true},
		{`exec{"a", nil}`, true},
		{`exec{nil, "b"}`, true},
		{`exec{"a", bogus = 1}`, true},
		{`exec{"a", max = "1"}`, true},
		{`exec{}`, true},
		{`exec{max = 1}`, true},
		{`exec{""}`, true},
		{`exec{"a", {}}`, true},
		{`exec{"a", "b\0"}`, true},
		{`exec{"a", timeout = 5, bogus = 1, max = -1}`, true},
		{`exec{"a", [7] = "x"}`, false},
		{`exec{"a", [1] = "x", "b"}`, false},
		{`local function args() return "x", "y" end exec{"a", args()}`, false},
		{`local function args() return "x", "y" end exec{"a", (args())}`, true},
		{`local function args() return "x", "y" end exec{"a", args(), "z"}`, true},
		{`local function opt() return 1, 2 end exec{"a", max = opt()}`, false},
		{`local function opt() return 1, 2 end exec{"a", max = opt(), "b"}`, true},
		{`local function f(...) exec{"a", ...} end f("x", "y")`, false},
		{`local function f(...) exec{"a", max = ...} end f(1, 2)`, false},
		{`local function f(...) exec{"a", ..., "z"} end f("x", "y")`, true},
		{`local order = {}
		  local function t(x) order[#order + 1] = x return x end
		  exec{t("a"), max = t(1), t("b"), "c"}
		  exec("order", table.concat(order, ","))`, true},
		{`local function run() exec{"a", max = 2} end run() run()`, true},
		{`exec{"a", exec{"b"}}`, true},
		{`local x = exec{"a"} exec("x", tostring(x))`, true},
		{`exec = function(t) env("N", #t) env("MAX", t.max or "none") exec2 = t end exec{"a", nil, "c", max = 3}`, true},
		{`exec = function(t) return 1, 2 end local a, b = exec{"a"} env("A", a) env("B", b)`, true},
		{`exec = nil exec{"a"}`, true},
		{`local exec = exec exec{"a", max = 1}`, false},
		{`pcall(exec, {"a"})`, false},
		{`skip("x") exec{"a"}`, true},
		{`_G["<exec>"](exec, -1, "x")`, false},
		{`_G["<exec>"](exec, 5e7, "x")`, false},
		{`_G["<exec>"](exec, 1.5, "x")`, false},
		{`_G["<exec>"](print, 5e7, "x")`, false},
		{`_G["<exec>"](exec, 1, "a", true, 1)`, false},
	} {
		slow, fast := rewritten(t, tc.src, execFieldsName, tc.rewritten)
		compareRewrite(t, tc.src, slow, fast)
	}
}

// TestExecOptions: every option exec's errors suggest is one it knows.
func TestExecOptions(t *testing.T) {
	for _, name := range execOptions {
		_, err := run(t, fmt.Sprintf("exec{'a', %s = {}}", name))
		if want := "bad argument #1 to exec (option " + name + ": want "; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"\n\nexec('a', {})", "rule.lua:3: bad argument #2 to exec (string or number expected, got table)"},
		{"exec()", "rule.lua:1: bad argument #1 to exec (command expected)"},
		{"exec{'a', max = -1}", "rule.lua:1: bad argument #1 to exec (option max: want a non-negative integer, got number)"},
		{"exec{'a', resolved_signal = 'SIGNOPE'}", `rule.lua:1: bad argument #1 to exec (option resolved_signal: unknown signal "SIGNOPE")`},
		{"exec{'a', resolved_signal = {}}", "rule.lua:1: bad argument #1 to exec (option resolved_signal: want a signal name or number, got table)"},
		{"exec{'a', bogus = 1}", "rule.lua:1: bad argument #1 to exec (unknown option bogus; the options are cooldown, ignore_resolved, key, max, notify_on_failure, resolved_signal, stdin, timeout, wait)"},
		{"exec{'a', maxx = 1}", "rule.lua:1: bad argument #1 to exec (unknown option maxx; did you mean max?)"},
		{"exec{'a', Timeout = 1}", "rule.lua:1: bad argument #1 to exec (unknown option Timeout; did you mean timeout?)"},
		{"exec{'a', wait = 'no'}", `rule.lua:1: bad argument #1 to exec (option wait: want true, false, or a duration ("8s") or seconds, got string)`},
		{"exec{'a', wait = 0}", `rule.lua:1: bad argument #1 to exec (option wait: want true, false, or a duration ("8s") or seconds, got number)`},
		{"exec{'a', [7] = 'x'}", "rule.lua:1: bad argument #1 to exec (unexpected key 7)"},
		{"exec('a', 'b\\0c')", "rule.lua:1: bad argument #2 to exec (argument contains a NUL byte)"},
		{"env('AMX_STATUS', 'x')", "rule.lua:1: bad argument #1 to env (AMX_STATUS: AMX_ names are reserved for amx)"},
		{"env('A=B', 'x')", `rule.lua:1: bad argument #1 to env (invalid environment variable name "A=B")`},
		{"env('LD_PRELOAD', '/tmp/x.so')", "rule.lua:1: bad argument #1 to env (LD_PRELOAD: refused, it makes the command load or run other code)"},
		{"for k, v in pairs({ld_audit = 1}) do env(k:upper(), v) end", "rule.lua:1: bad argument #1 to env (LD_AUDIT: refused, it makes the command load or run other code)"},
		{"env('BASH_ENV', '/tmp/x')", "rule.lua:1: bad argument #1 to env (BASH_ENV: refused, it makes the command load or run other code)"},
		{"env('A\\0', 'x')", `rule.lua:1: bad argument #1 to env (invalid environment variable name "A\x00")`},
		{"env('A', 'x\\0y')", "rule.lua:1: bad argument #2 to env (argument contains a NUL byte)"},
		{"exec{'a', 'b\\0'}", "rule.lua:1: bad argument #1 to exec (item 2: argument contains a NUL byte)"},
		{"env('A', nil)", "rule.lua:1: bad argument #2 to env (string or number expected, got nil)"},
		{"local t = nil\nexec(t.x)", "rule.lua:2: attempt to index a nil value (local 't')"},
		{"local host = alert.labels.nosuch:match('^([^:]+)')", "rule.lua:1: attempt to index a nil value (field 'nosuch')"},
		{"exec(undefined_table.x)", "rule.lua:1: attempt to index a nil value (global 'undefined_table')"},
		{"local function f(opts) return opts.x end\nf()", "rule.lua:1: attempt to index a nil value (local 'opts')"},
		// Two expressions indexed with the same key: not guessed.
		{"local a, b = nil, nil\nexec(a.x or b.x)", "rule.lua:2: attempt to index a non-table object(nil) with key 'x'"},
		{"error('custom')", "rule.lua:1: custom"},
		// The host function behind exec{...} checks what a script that
		// calls it by its name gives it.
		{"_G['<exec>'](exec, 5e7, 'x')", "rule.lua:1: bad argument #1 to exec (unexpected key 50000000)"},
		{"_G['<exec>'](exec, true, 'x')", "rule.lua:1: bad argument #1 to exec (unexpected key true)"},
		{"_G['<exec>'](print, 0, 'x')", "rule.lua:1: bad argument #1 to exec (unexpected key 0)"},
	} {
		res, err := run(t, tc.src)
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: err = %v\nwant %q", tc.src, err, tc.err)
		}
		if len(res.Execs) != 0 {
			t.Errorf("%q: a failed run asked for %+v", tc.src, res.Execs)
		}
	}
}

// TestSandbox: what a rule must not reach fails with a clear error, and the
// VM keeps working afterwards.
func TestSandbox(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"dofile('/etc/passwd')", "dofile is not available in amx rules"},
		{"loadfile('/etc/passwd')", "loadfile is not available in amx rules"},
		{"load(function() return 'x' end)", "load is not available in amx rules"},
		{"loadstring('return 1')", "loadstring is not available in amx rules"},
		{"require('os')", "require is not available in amx rules"},
		{"getfenv(1)", "getfenv is not available in amx rules"},
		{"setfenv(1, {})", "setfenv is not available in amx rules"},
		{"collectgarbage()", "collectgarbage is not available in amx rules"},
		{"newproxy(true)", "newproxy is not available in amx rules"},
		{"print('x')", "print is not available in amx rules"},
		{"io.open('/etc/passwd')", "io is not available in amx rules"},
		{"os.execute('id')", "os is not available in amx rules"},
		{"os = 1 os.exit()", ""}, // a script may shadow a name in its own environment
		{"debug.getinfo(1)", "debug is not available in amx rules"},
		{"package.loaded.x = 1", "package is not available in amx rules"},
		{"coroutine.create(print)", "coroutine is not available in amx rules"},
		{"string.dump(print)", "attempt to call a non-function object"},
		{"string.rep('ab', 1e8)", "string.rep: result longer than 16777216 bytes"},
		{"local s = ('x'):rep(1e9)", "string.rep: result longer than 16777216 bytes"},
		{"string.rep = nil", "attempt to modify a read-only table"},
		{"rawset(math, 'pi', 3)", "attempt to modify a read-only table"},
		{"setmetatable(table, {})", "cannot change a protected metatable"},
		{"setmetatable('', {})", "bad argument #1 to setmetatable (table expected, got string)"},
		{"getmetatable('').__index.rep = nil", "attempt to index a non-table object(boolean) with key '__index'"},
		{"getmetatable(_G).__index.exec = nil", "attempt to index a non-table object(boolean) with key '__index'"},
		{"getmetatable(msg).__index = nil", "attempt to index a non-table object(nil) with key '__index'"}, // msg is a plain table
	} {
		_, err := run(t, tc.src)
		switch {
		case tc.err == "" && err != nil && !strings.Contains(err.Error(), "attempt to index"):
			t.Errorf("%q: %v", tc.src, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err = %v, want %q", tc.src, err, tc.err)
		}
	}
}

// TestIsolation runs a hostile script and then an inspecting one on the
// same state: nothing the first did may be visible to the second. Each
// hostile line runs on its own, so that no line hides another (adding a
// global makes the next invocation get a new environment, for one).
func TestIsolation(t *testing.T) {
	inspect, err := Compile("inspect.lua", `
assert(leaked == nil, "global leaked")
assert(leaked_g == nil, "_G global leaked")
assert(_G[1] == nil and raw == nil, "table.insert or rawset on _G leaked")
local want = ({["0aa7859a3dd8b47b"] = {"db1:9100", "firing", "https://runbooks.example/disk", "/var"},
               ["8bc64ed21b99e322"] = {"db2:9100", "resolved", nil, nil}})[alert.fingerprint]
assert(alert.labels.instance == want[1] and alert.status == want[2], "alert table leaked")
assert(alert.annotations.runbook_url == want[3], "alert.annotations leaked")
assert(alert.labels.mountpoint == want[4], "a label of the previous alert leaked")
assert(alert.labels.leaked == nil and alert.annotations.leaked == nil, "a field added to labels or annotations leaked")
assert(msg.common_labels.job == "node" and msg.receiver == "executor", "msg table leaked")
assert(msg.alerts[1].status == "firing", "msg.alerts leaked")
assert(string.rep("a", 2) == "aa" and ("a"):rep(3) == "aaa", "string.rep changed")
assert(string.upper("a") == "A", "string.upper removed")
assert(getmetatable(math) == false, "math metatable changed")
assert(getmetatable(alert) == nil, "alert metatable changed")
exec("still", "works")
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, hostile := range []string{
		`local x = alert.labels.instance, alert.labels.mountpoint, alert.annotations.runbook_url, alert.status`,
		`leaked = "global"`,
		`_G.leaked_g = "via _G"`,
		`alert.labels.instance = "changed"`,
		`alert.labels.leaked = "x"`,
		`alert.annotations.leaked = "x"`,
		`alert.annotations.runbook_url = "changed"`,
		`rawset(alert.annotations, "leaked", "x")`,
		`table.insert(alert.labels, "x")`,
		`alert.status = "changed"`,
		`rawset(alert, "labels", {instance = "changed"})`,
		`setmetatable(alert, {__index = function() return "changed" end})`,
		`msg.common_labels.job = "changed"`,
		`msg.receiver = "changed"`,
		`msg.alerts[1].status = "changed"`,
		`alert = {labels = {instance = "changed"}}`,
		`msg = nil`,
		`_G = {}`,
		`table.insert(_G, "array")`,
		`rawset(_G, "raw", true)`,
		`pcall(function() string.rep = function() return "hijacked" end end)`,
		`pcall(rawset, string, "upper", nil)`,
		`pcall(setmetatable, math, {})`,
		`pcall(function() getmetatable("").__index = {} end)`,
		`exec = function() end`,
		`env("FROM_FIRST", "1")`,
	} {
		vm := NewVM(time.Second, 0, nil)
		st := newState()
		s, err := Compile("hostile.lua", hostile)
		if err != nil {
			t.Fatal(err)
		}
		n := notification()
		// Each alert of the two, one without annotations, after each.
		for _, pair := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
			if _, err := vm.runOn(context.Background(), st, s, "r", n, pair[0]); err != nil {
				t.Fatalf("%s: %v", hostile, err)
			}
			res, err := vm.runOn(context.Background(), st, inspect, "r", n, pair[1])
			if err != nil {
				t.Errorf("after %s on alert %d, alert %d: %v", hostile, pair[0], pair[1], err)
			} else if len(res.Execs) != 1 || len(res.Env) != 0 {
				t.Errorf("after %s: %+v", hostile, res)
			}
		}
		if n.Alerts[0].Labels["instance"] != "db1:9100" || n.CommonLabels["job"] != "node" {
			t.Errorf("%s changed Go data", hostile)
		}
		st.L.Close()
	}
}

// TestLabelsReused: alert and alert.labels, which a state keeps from one
// invocation to the next, show exactly the alert at hand, however its
// labels vary.
func TestLabelsReused(t *testing.T) {
	s, err := Compile("labels.lua", `
local n = tonumber(alert.labels.n)
assert(alert.labels.common == "c", "common")
assert(alert.labels["k" .. n] == tostring(n), "own label")
assert(alert.labels["k" .. (n - 1)] == nil, "the previous alert's label")
assert(alert.annotations["a" .. (n % 3)] == (n % 2 == 0 and "x" or nil), "annotation")
assert(alert.status == ({[0] = "firing", "resolved", "unknown"})[n % 3], "status")
exec("ok")
`)
	if err != nil {
		t.Fatal(err)
	}
	n := &Notification{}
	for i := range 300 {
		a := Alert{Status: []string{"firing", "resolved", "unknown"}[i%3],
			Labels: map[string]string{"common": "c", "n": fmt.Sprint(i), fmt.Sprint("k", i): fmt.Sprint(i)}}
		if i%2 == 0 {
			a.Annotations = map[string]string{fmt.Sprint("a", i%3): "x"}
		}
		n.Alerts = append(n.Alerts, a)
	}
	vm := NewVM(time.Second, 0, nil)
	st := newState()
	defer st.L.Close()
	for i := range n.Alerts {
		if res, err := vm.runOn(context.Background(), st, s, "r", n, i); err != nil || len(res.Execs) != 1 {
			t.Fatalf("alert %d: %v", i, err)
		}
	}
}

func TestTimeout(t *testing.T) {
	vm := NewVM(50*time.Millisecond, 0, nil)
	s, err := Compile("spin.lua", "local n = 0\nwhile true do n = n + 1 end")
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Run(context.Background(), s, "r", notification(), 0)
	if err == nil || !strings.HasPrefix(err.Error(), "spin.lua:2: timed out after 50ms") {
		t.Errorf("err = %v", err)
	}
	ok, _ := Compile("ok.lua", "exec('a')")
	if res, err := vm.Run(context.Background(), ok, "r", notification(), 0); err != nil || len(res.Execs) != 1 {
		t.Errorf("after a timeout: %+v %v", res, err)
	}
}

// TestMemoryLimitGarbage: garbage does not count against the memory limit,
// live objects do. With the collector off, as with GOGC=off and a
// GOMEMLIMIT above the limit, the heap is past the limit before the script
// starts: the spinning script is stopped by its deadline while that is
// garbage, and for memory while it is kept.
func TestMemoryLimitGarbage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	s, err := Compile("spin.lua", "while true do end")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keep bool
		want string
	}{
		{"garbage", false, KindTimeout},
		{"live", true, KindMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = 1 // so that the pages are the heap's, not only reserved
			}
			if !tc.keep {
				b = nil
			}
			vm := NewVM(100*time.Millisecond, 32<<20, nil)
			_, err = vm.Run(context.Background(), s, "r", notification(), 0)
			if lerr, ok := errors.AsType[*Error](err); !ok || lerr.Kind != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
			runtime.KeepAlive(b)
		})
	}
	runtime.GC()
}

// TestCanceled: a script whose caller gives up is stopped, whatever its
// deadline, and one whose caller gave up before it started does not run.
func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	// The script's log() line is the sign that it runs: the caller gives
	// up then.
	log := slog.New(cancelHandler{cancel})
	vm := NewVM(time.Hour, 0, log)
	s, err := Compile("spin.lua", "log('started')\nwhile true do end")
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Run(ctx, s, "r", notification(), 0)
	if lerr, ok := errors.AsType[*Error](err); !ok || lerr.Kind != KindCanceled || lerr.Msg != "spin.lua:2: stopped: context canceled" {
		t.Errorf("err = %#v", err)
	}
	_, err = vm.Run(ctx, s, "r", notification(), 0)
	if lerr, ok := errors.AsType[*Error](err); !ok || lerr.Kind != KindCanceled || lerr.Msg != "spin.lua: not run: context canceled" {
		t.Errorf("err = %#v", err)
	}
}

// cancelHandler cancels at the first record it gets.
type cancelHandler struct{ cancel context.CancelFunc }

func (h cancelHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelHandler) Handle(context.Context, slog.Record) error {
	h.cancel()
	return nil
}
func (h cancelHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h cancelHandler) WithGroup(string) slog.Handler      { return h }

// TestTimeoutInPattern: a pattern that backtracks for exponential time is
// one Lua instruction; the deadline stops it all the same.
func TestTimeoutInPattern(t *testing.T) {
	vm := NewVM(50*time.Millisecond, 0, nil)
	s, err := Compile("backtrack.lua", `local s = string.rep("a", 40)
return s:match(string.rep("a*", 40) .. "b")`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Run(context.Background(), s, "r", notification(), 0)
	if err == nil || !strings.HasPrefix(err.Error(), "backtrack.lua:2: timed out after 50ms") {
		t.Errorf("err = %v", err)
	}
}

// TestTimeoutInPatternFromIssue is the pattern gopher-lua's own string.match
// ran for seconds on: stopped by the deadline like any other code.
func TestTimeoutInPatternFromIssue(t *testing.T) {
	vm := NewVM(50*time.Millisecond, 0, nil)
	s, err := Compile("split.lua", `return ("a."):rep(200):match("^(.-)%.(.-)%.(.-)%.(.-):(%d+)$")`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Run(context.Background(), s, "r", notification(), 0)
	if lerr, ok := errors.AsType[*Error](err); !ok || lerr.Kind != KindTimeout {
		t.Errorf("err = %v, want a timeout", err)
	}
}

// TestStringLimits: the library functions that build a string in one Go
// call refuse one past 16 MiB before building it, so no script can make
// the server allocate gigabytes at once; ordinary use is unchanged.
func TestStringLimits(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{`return string.rep("x", 8e9)`, "string.rep: result longer than 16777216 bytes"},
		{`local s = ("x"):rep(16*1024*1024 - 1) local t = {} for i = 1, 1000 do t[i] = s end return table.concat(t)`,
			"table.concat: result longer than 16777216 bytes"},
		{`local t = {} for i = 1, 17 do t[i] = ("x"):rep(1024*1024) end return table.concat(t, ",", 1, 17)`,
			"table.concat: result longer than 16777216 bytes"},
		{`return string.format("%099999999s", "x")`, "invalid format (width or precision too long)"},
		{`return string.format("%.100f", 1)`, "invalid format (width or precision too long)"},
		{`local s = ("x"):rep(9*1024*1024) return string.format("%s%s", s, s)`, "string.format: result longer than 16777216 bytes"},
		{`return (("x"):rep(1024):gsub("x", ("y"):rep(17*1024)))`, "string.gsub: result longer than 16777216 bytes"},
		{`assert(table.concat({1, "a", 2.5}, "-") == "1-a-2.5")
assert(table.concat({"a", "b", "c"}, ",", 2) == "b,c")
assert(not pcall(table.concat, {"a", {}, "c"}))
assert(string.format("%5.2f|%-3s|%d%%", 3.14159, "a", 7) == " 3.14|a  |7%")
assert(#(("x"):rep(1024):gsub("x", "yy")) == 2048)`, ""},
	} {
		s, err := Compile("limits.lua", tc.src)
		if err != nil {
			t.Fatal(err)
		}
		// A generous deadline: the limits, not the time, are tested,
		// and -race on a busy machine is slow.
		_, err = NewVM(time.Minute, 0, nil).Run(context.Background(), s, "r", notification(), 0)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err = %v, want %q", tc.src, err, tc.err)
		}
	}
}

// TestPrefill: the label and annotation names a script reads by name are set
// on its tables before it runs. Scripts that read, write, remove and list
// them, by name, through a local and by a computed name, take turns on one
// state over alerts whose labels come and go, often the same script for
// several alerts in a row; each must see what it sees when compiled without
// that, on a state of its own.
func TestPrefill(t *testing.T) {
	srcs := []string{
		`exec("r", alert.labels.a or "-", alert.labels.b or "-", alert.annotations.a or "-")`,
		`alert.labels.a = "w" exec("w", alert.labels.a, alert.labels.b or "-")`,
		`alert.labels.a = nil
		local ks = {}
		for k, v in pairs(alert.labels) do ks[#ks + 1] = k .. "=" .. v end
		table.sort(ks)
		exec("d", table.concat(ks, ","), alert.labels.a or "-")`,
		`local l = alert.labels exec("l", l.b or "-", l.c or "-", rawget(l, "a") or "-")`,
		`if alert.labels.a then alert.annotations.a = alert.labels.a .. "!" end
		exec("m", alert.annotations.a or "-", alert.labels.a or "-", alert.labels.c or "-")`,
		`local k = "a" exec("k", alert.labels[k] or "-", alert.labels.b or "-")`,
		`local ks = {}
		for k, v in pairs(alert.labels) do ks[#ks + 1] = k .. "=" .. v end
		for k, v in pairs(alert.annotations) do ks[#ks + 1] = "@" .. k .. "=" .. v end
		table.sort(ks)
		exec("p", table.concat(ks, ","))`,
		`if alert.labels.b == "1" then alert.labels.a = "w" end
		if alert.labels.b == "2" then alert.labels.a = nil end
		exec("c", alert.labels.a or "-")`,
	}
	var fast, slow []*Script
	for i, src := range srcs {
		name := fmt.Sprintf("s%d.lua", i)
		f, err := compile(name, src, true)
		if err != nil {
			t.Fatal(err)
		}
		s, err := compile(name, src, false)
		if err != nil {
			t.Fatal(err)
		}
		fast, slow = append(fast, f), append(slow, s)
	}
	if len(fast[0].labelKeys) != 2 || !slices.Equal(fast[3].labelKeys, []string{"b", "c"}) || len(slow[0].labelKeys) != 0 {
		t.Fatalf("keys %q %q %q", fast[0].labelKeys, fast[3].labelKeys, slow[0].labelKeys)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	some := func(names ...string) map[string]string {
		m := map[string]string{}
		for _, k := range names {
			if v := rnd.IntN(3); v > 0 {
				m[k] = fmt.Sprint(v)
			}
		}
		return m
	}
	n := &Notification{}
	for range 400 {
		n.Alerts = append(n.Alerts, Alert{Status: "firing", Labels: some("a", "b", "c"), Annotations: some("a")})
	}
	vm := NewVM(time.Minute, 0, nil)
	fs, ss := newState(), newState()
	defer fs.L.Close()
	defer ss.L.Close()
	s := 0
	for i := range n.Alerts {
		if rnd.IntN(2) == 0 { // or the same again, as for a notification's alerts
			s = rnd.IntN(len(srcs))
		}
		got, err := vm.runOn(context.Background(), fs, fast[s], "r", n, i)
		want, werr := vm.runOn(context.Background(), ss, slow[s], "r", n, i)
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("alert %d %v, script %d:\n got  %+v %v\n want %+v %v", i, n.Alerts[i], s, got, err, want, werr)
		}
	}
}
