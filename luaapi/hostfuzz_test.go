package luaapi

import (
	"context"
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
			if !ok || !validEnvName(name) || strings.HasPrefix(name, "AMX_") || strings.IndexByte(value, 0) >= 0 {
				t.Fatalf("variable %q", kv)
			}
		}
	})
}
