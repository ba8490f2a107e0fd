package luaapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// reachable describes every table a script can reach from a state's
// globals and the strings' metatable, following keys, values and
// metatables: each table's raw contents, with tables and functions named
// by identity.
func reachable(st *state) map[*lua.LTable]string {
	seen := map[*lua.LTable]string{}
	var walk func(v lua.LValue)
	walk = func(v lua.LValue) {
		t, ok := v.(*lua.LTable)
		if !ok {
			return
		}
		if _, done := seen[t]; done {
			return
		}
		seen[t] = ""
		var kvs []string
		t.ForEach(func(k, v lua.LValue) {
			kvs = append(kvs, describeValue(k)+"="+describeValue(v))
			walk(k)
			walk(v)
		})
		slices.Sort(kvs)
		seen[t] = strings.Join(kvs, ", ") + " | meta " + describeValue(t.Metatable)
		walk(t.Metatable)
	}
	walk(st.L.G.Global)
	walk(st.L.GetMetatable(lua.LString("")))
	return seen
}

func describeValue(v lua.LValue) string {
	switch v := v.(type) {
	case *lua.LTable, *lua.LFunction:
		return fmt.Sprintf("%s@%p", v.Type(), v)
	}
	return v.Type().String() + ":" + v.String()
}

// TestNothingShared: whatever a script does to what it can reach, the
// tables every later invocation on the state reaches are as they were: the
// string library behind ("").__index, the read-only library proxies under
// table.insert, remove and sort, rawset and setmetatable.
func TestNothingShared(t *testing.T) {
	var src strings.Builder
	for _, h := range hostileScripts {
		fmt.Fprintf(&src, "pcall(function() %s end)\n", h)
	}
	src.WriteString(`exec("reboot-host", (alert.labels.instance:match("^([^:]+)")))`)
	attack, err := Compile("attack.lua", src.String())
	if err != nil {
		t.Fatal(err)
	}
	st := newState()
	defer st.L.Close()
	before := reachable(st)
	for range 3 {
		for _, s := range []*Script{attack, isolationCheck} {
			res, err := NewVM(time.Second, 0, nil).runOn(context.Background(), st, s, "r", notification(), 0)
			if err != nil {
				t.Fatalf("%s: %v", s.Name(), err)
			}
			if len(res.Execs) != 1 || !slices.Equal(res.Execs[0].Args, []string{"db1"}) {
				t.Errorf("%s exec'd %+v, want reboot-host db1", s.Name(), res.Execs)
			}
		}
	}
	if diff := sameReachable(before, reachable(st)); diff != "" {
		t.Error(diff)
	}
}

// sameReachable describes how two results of reachable differ.
func sameReachable(before, after map[*lua.LTable]string) string {
	var diff strings.Builder
	for tbl, was := range before {
		if now, ok := after[tbl]; !ok {
			fmt.Fprintf(&diff, "table %p no longer reachable: %s\n", tbl, was)
		} else if now != was {
			fmt.Fprintf(&diff, "table %p changed:\n was %s\n now %s\n", tbl, was, now)
		}
	}
	for tbl := range after {
		if _, ok := before[tbl]; !ok {
			fmt.Fprintf(&diff, "new table %p reachable: %s\n", tbl, after[tbl])
		}
	}
	return diff.String()
}

// isolationCheck fails when a library, the strings' metatable or the
// globals changed, and execs what the attack changed.
var isolationCheck = func() *Script {
	s, err := Compile("check.lua", `
assert(string.match("db1:9100", "^([^:]+)") == "db1" and #string == 0 and string[1] == nil, "string library changed")
assert(math[1] == nil and table[1] == nil and _G[1] == nil, "a library changed")
assert(("x"):upper() == "X" and (""). __index == nil, "the strings' metatable changed")
exec("reboot-host", (alert.labels.instance:match("^([^:]+)")))`)
	if err != nil {
		panic(err)
	}
	return s
}()

// hostileScripts try to change what other invocations see.
var hostileScripts = []string{
	`("").__index.match = function() return "evil-host" end`,
	`local lib = ("").__index lib.upper = nil`,
	`getmetatable("").__index = {}`,
	`table.insert(string, "x")`,
	`table.insert(os, "x")`,
	`table.insert(math, 1, "x")`,
	`table.insert(table, "x")`,
	`table.remove(string)`,
	`table.sort(math)`,
	`rawset(string, "match", 1)`,
	`rawset(io, 1, 1)`,
	`string.match = 1`,
	`setmetatable(string, {})`,
	`for k in pairs(string) do string[k] = nil end`,
	`string = nil`,
	`rawset(_G, "string", {})`,
	`unpack = nil`,
	`_G.exec = nil`,
	`table.insert(_G, 1)`,
}

// FuzzIsolation: whatever a mutated hostile script does, the tables later
// invocations reach are unchanged and they behave as on a fresh state.
func FuzzIsolation(f *testing.F) {
	for _, h := range hostileScripts {
		f.Add(h)
	}
	f.Add(`string.format(string.rep("%[1]s", 4), "x")`)
	f.Add(`("(("):find("%b()")`)
	vm := NewVM(50*time.Millisecond, 0, nil)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile("fuzz.lua", src)
		if err != nil {
			return
		}
		st := newState()
		defer st.L.Close()
		before := reachable(st)
		if _, err := vm.runOn(context.Background(), st, s, "r", notification(), 0); err != nil || st.ctx.Err() != nil {
			return // a state that failed is closed, not reused
		}
		res, err := vm.runOn(context.Background(), st, isolationCheck, "r", notification(), 0)
		if err != nil || len(res.Execs) != 1 || !slices.Equal(res.Execs[0].Args, []string{"db1"}) {
			t.Fatalf("after %q: %+v, %v", src, res.Execs, err)
		}
		if diff := sameReachable(before, reachable(st)); diff != "" {
			t.Fatalf("after %q:\n%s", src, diff)
		}
	})
}
