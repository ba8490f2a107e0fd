package luaapi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzHostFunctions mutates scripts that call exec, env and skip with all
// kinds of arguments. Whatever a script does, the host functions either
// raise the script's error or hand back what a command can be started
// with: a command, arguments and variables without NUL bytes, variable
// names that are names and not AMX_. go test runs the seeds and
// testdata/fuzz/FuzzHostFunctions.
func FuzzHostFunctions(f *testing.F) {
	for _, seed := range []string{
		`exec("bin/a", "x", 1, 2.5)`,
		`exec{"bin/a", "x", max = 1, resolved_signal = "SIGTERM", ignore_resolved = true, timeout = "10m", notify_on_failure = false, stdin = "in"}`,
		`env("RUNBOOK", alert.annotations.runbook_url) exec("bin/a")`,
		`env("A", 1) env("B_2", "x") exec("a") exec("b", alert.labels.instance)`,
		`skip("maintenance")`,
		`exec("a") skip()`,
		`exec("a\0b")`,
		`env("AMX_X", "y")`,
		`env("A=B", "y")`,
		`exec{}`,
		`exec{"a", max = -1}`,
		`exec(nil)`,
		`exec({}, {})`,
		`exec("a", alert)`,
		`pcall(skip, "x") exec("a")`,
		`for k, v in pairs(alert.labels) do env(k:upper(), v) end exec("a")`,
		`exec("a", string.format("%[1]s", "x"))`,
		`env("LD_PRELOAD", "/tmp/x.so") exec("a")`,
		`exec("a", unpack(msg.alerts))`,
	} {
		f.Add(seed)
	}
	vm := NewVM(50*time.Millisecond, 0, nil)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile("fuzz.lua", src)
		if err != nil {
			return
		}
		res, err := vm.Run(context.Background(), s, "r", notification(), 0)
		if err != nil {
			return // the script's mistake, reported with its line
		}
		if res.Skipped && len(res.Execs) > 0 {
			t.Fatalf("a skipped invocation exec'd: %+v", res)
		}
		for _, e := range res.Execs {
			if e.Cmd == "" || strings.IndexByte(e.Cmd, 0) >= 0 {
				t.Fatalf("command %q", e.Cmd)
			}
			for _, a := range e.Args {
				if strings.IndexByte(a, 0) >= 0 {
					t.Fatalf("argument %q", a)
				}
			}
		}
		for _, kv := range res.Env {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || !validEnvName(name) || strings.HasPrefix(name, "AMX_") || Unsafe(name) || strings.IndexByte(value, 0) >= 0 {
				t.Fatalf("variable %q", kv)
			}
		}
	})
}

// FuzzRewrite holds what Compile does for speed (the rewrites of
// rewrite.go, the names set before a run, the guards of guard.go) to the
// scripts as written: mutated around skip statements, exec{} calls and
// guards, every script that compiles must give the same result and the
// same error both ways, for a firing and a resolved alert.
// Scripts whose results depend on more than the script (iteration order,
// addresses, the clock) are left out. go test runs the seeds and
// testdata/fuzz/FuzzRewrite.
func FuzzRewrite(f *testing.F) {
	for _, seed := range []string{
		`exec{"a", "b", max = 1, timeout = "10m"} skip("x") exec("c")`,
		`local function f() return "x", "y" end exec{"a", f(), max = f(), "z"} exec{"b", f()}`,
		`local function f(...) exec{"a", ..., wait = false} skip(...) end f(1, 2)`,
		`if alert.status == "firing" then skip("firing") end exec{alert.labels.instance, max = 2, max = nil}`,
		`for i = 1, 3 do exec{"a", i, [i] = "x"} if i == 2 then skip(i) end end`,
		`exec = function(t) env("N", #t) end exec{"a", nil, "c", bogus = 1}`,
		`skip = exec skip("a", "b")`,
		`local skip = skip skip("a")`,
		`repeat exec{"a"} skip({}) until true`,
		`exec{"a", exec{"b", max = -1}, "c"}`,
		`exec{"a", stdin = alert.annotations.summary, resolved_signal = 15, ignore_resolved = false}`,
		`if alert.status ~= "firing" or alert.labels.mountpoint == nil then skip("guard") end exec("a")`,
		`if not (alert.annotations.runbook_url and alert.labels["instance"] == "db1:9100") then return end exec("a")`,
	} {
		f.Add(seed)
	}
	vm := NewVM(50*time.Millisecond, 0, nil)
	f.Fuzz(func(t *testing.T, src string) {
		for _, unstable := range []string{"pairs", "next", "random", "tostring"} {
			if strings.Contains(src, unstable) {
				return
			}
		}
		slow, err := compile("fuzz.lua", src, false)
		if err != nil {
			return
		}
		fast, err := compile("fuzz.lua", src, true)
		if err != nil {
			t.Fatalf("compiles as written but not rewritten: %v", err)
		}
		n := notification()
		for i := range n.Alerts { // one firing, one resolved
			want, wantErr := vm.Run(context.Background(), slow, "route", n, i)
			got, gotErr := vm.Run(context.Background(), fast, "route", n, i)
			if strings.Contains(fmt.Sprint(wantErr, gotErr), "0x") || isStop(wantErr) || isStop(gotErr) {
				return // an address in the message, or the watchdog's timing
			}
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s, alert %d:\nrewritten:  %+v %v\nas written: %+v %v", src, i, got, gotErr, want, wantErr)
			}
		}
	})
}

// isStop reports whether err is the watchdog stopping a script.
func isStop(err error) bool {
	lerr, ok := errors.AsType[*Error](err)
	return ok && lerr.Kind != KindError
}
