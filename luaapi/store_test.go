package luaapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// runWithState runs src with a store holding values, read as route
// "reboot".
func runWithState(t *testing.T, vm *VM, src string, values map[string]StateValue) (Result, error) {
	t.Helper()
	s, err := Compile("rule.lua", src)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	n := notification()
	n.State = func(route, key string) (StateValue, bool, error) {
		if route != "reboot" {
			return StateValue{}, false, fmt.Errorf("read of route %q", route)
		}
		v, ok := values[key]
		return v, ok, nil
	}
	return vm.Run(context.Background(), s, "reboot", n, 0)
}

// TestStateFunctions: state.get reads the store and this run's own writes;
// set, incr and del are recorded in call order for admission to apply.
func TestStateFunctions(t *testing.T) {
	vm := NewVM(time.Second, 0, nil)
	store := map[string]StateValue{"n": {Num: 2, IsNum: true}, "s": {Str: "x"}}
	res, err := runWithState(t, vm, `
		assert(state.get("n") == 2 and state.get("s") == "x" and state.get("none") == nil)
		assert(state.incr("n") == 3)
		assert(state.incr("n", 2, "24h") == 5)
		assert(state.incr("new", 1, 3600) == 1)
		state.set("s", "y", "1h")
		assert(state.get("s") == "y")
		state.del("s")
		assert(state.get("s") == nil)
		exec("reboot", tostring(state.get("n")))
	`, store)
	if err != nil {
		t.Fatal(err)
	}
	want := []StateWrite{
		{Op: "incr", Key: "n", Value: StateValue{Num: 1, IsNum: true}},
		{Op: "incr", Key: "n", Value: StateValue{Num: 2, IsNum: true}, TTL: 24 * time.Hour},
		{Op: "incr", Key: "new", Value: StateValue{Num: 1, IsNum: true}, TTL: time.Hour},
		{Op: "set", Key: "s", Value: StateValue{Str: "y"}, TTL: time.Hour},
		{Op: "del", Key: "s"},
	}
	if fmt.Sprint(res.Writes) != fmt.Sprint(want) {
		t.Errorf("writes\n%v\nwant\n%v", res.Writes, want)
	}
	if len(res.Execs) != 1 || res.Execs[0].Args[0] != "5" {
		t.Errorf("execs %+v", res.Execs)
	}
	// The next run on the same states starts with no writes of its own.
	res, err = runWithState(t, vm, `assert(state.get("n") == 2)`, store)
	if err != nil || len(res.Writes) != 0 {
		t.Errorf("a later run saw an earlier run's writes: %v %v", res.Writes, err)
	}
}

// TestStateErrors: bad keys, values and TTLs, and replacing the library,
// fail the run with script:line.
func TestStateErrors(t *testing.T) {
	vm := NewVM(time.Second, 0, nil)
	for _, tc := range []struct{ src, want string }{
		{`state.set("", 1)`, "rule.lua:1: bad argument #1 to state.set (a key is 1 to 256 bytes, got 0)"},
		{`state.set(("k"):rep(300), 1)`, "rule.lua:1: bad argument #1 to state.set (a key is 1 to 256 bytes, got 300)"},
		{`state.set("k", ("v"):rep(5000))`, "rule.lua:1: bad argument #2 to state.set (a value is at most 4096 bytes, got 5000)"},
		{`state.set("k", {})`, "rule.lua:1: bad argument #2 to state.set (want a string or a number, got table)"},
		{`state.incr("k", 1, "soon")`, `rule.lua:1: bad argument #3 to state.incr (want a TTL: a duration ("24h") or seconds)`},
		{`local n = state.incr("s")`, "rule.lua:1: state.incr: s: the value is a string, not a number"},
		{`for i = 1, 101 do state.set("k" .. i, i) end`, "rule.lua:1: state.set: more than 100 state changes in one run"},
		{`state.get = nil`, "rule.lua:1: attempt to index a userdata value (global 'state')"},
	} {
		_, err := runWithState(t, vm, tc.src, map[string]StateValue{"s": {Str: "x"}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
	// The library is intact for the next run.
	if _, err := runWithState(t, vm, `assert(type(state.get) ~= "nil")`, nil); err != nil {
		t.Errorf("state after the attempts: %v", err)
	}
}

// TestExecKeyAndCooldown: exec{} takes the key max and cooldown count per,
// and a cooldown.
func TestExecKeyAndCooldown(t *testing.T) {
	res, err := run(t, `exec{"cleanup", "/var", key = alert.labels.instance, cooldown = "30m"}
		exec{"cleanup", "/data", key = 9100, cooldown = 60}`)
	if err != nil {
		t.Fatal(err)
	}
	e := res.Execs
	if len(e) != 2 || *e[0].Key != "db1:9100" || *e[0].Cooldown != 30*time.Minute || *e[1].Key != "9100" || *e[1].Cooldown != time.Minute {
		t.Errorf("execs: %+v", e)
	}
	for src, want := range map[string]string{
		`exec{"a", key = ""}`:          "option key: want a string of 1 to 256 bytes",
		`exec{"a", key = {}}`:          "option key: want a string, got table",
		`exec{"a", cooldown = "soon"}`: `option cooldown: want a duration ("10m") or seconds, got string`,
	} {
		if _, err := run(t, src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", src, err, want)
		}
	}
}

// TestIncrStatement: a statement state.incr(...), which Compile turns into
// a call that does not read the sum, records the same writes and fails the
// same way as the call as written, without reading the store.
func TestIncrStatement(t *testing.T) {
	for i, tc := range []struct {
		src       string
		rewritten bool
	}{
		{`state.incr("n")`, true},
		{`state.incr("n", 2, "1h") exec("a") state.incr("m", -1)`, true},
		{`if alert then state.incr("n") end`, true},
		{`local function f() state.incr("n") end f()`, true},
		// the first four read the store as written
		{`state.incr("n", 1, "soon")`, true},
		{`state.incr("")`, true},
		{`state.incr("n", "x")`, true},
		{`state.incr({})`, true},
		{`state = {incr = function(k, n) env("K", k .. n) end} state.incr("n", 3)`, true},
		{`state = 5 state.incr("n")`, true},
		{`_G["<incr>"](print, "n")`, false},
		{`local x = state.incr("n") exec("a", tostring(x))`, false},
		{`if state.incr("n") > 2 then exec("a") end`, false},
		{`local state = state state.incr("n")`, false},
		{`state:incr("n")`, false},
	} {
		slow, fast := rewritten(t, tc.src, incrStmtName, tc.rewritten)
		vm := NewVM(time.Second, 0, nil)
		reads := 0
		n := notification()
		n.State = func(route, key string) (StateValue, bool, error) {
			reads++
			return StateValue{Num: 2, IsNum: true}, true, nil
		}
		want, wantErr := vm.Run(context.Background(), slow, "route", n, 0)
		slowReads := reads
		reads = 0
		got, gotErr := vm.Run(context.Background(), fast, "route", n, 0)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s:\nrewritten:  %+v %v\nas written: %+v %v", tc.src, got, gotErr, want, wantErr)
		}
		if tc.rewritten && reads != 0 || i < 4 && slowReads == 0 {
			t.Errorf("%s: %d reads rewritten, %d as written", tc.src, reads, slowReads)
		}
	}
	// The one difference: on a string, the statement leaves the refusal
	// to admission.
	res, err := runWithState(t, NewVM(time.Second, 0, nil), `state.incr("s")`, map[string]StateValue{"s": {Str: "x"}})
	if err != nil || len(res.Writes) != 1 {
		t.Errorf("incr statement on a string: %+v %v", res, err)
	}
}
