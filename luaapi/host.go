package luaapi

import (
	"fmt"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/amx-dev/amx/rules"
)

// exec(cmd, arg, ...) or exec{cmd, arg, ..., max=, resolved_signal=,
// ignore_resolved=, timeout=, notify_on_failure=, stdin=} records an Exec.
func (s *state) exec(L *lua.LState) int {
	var e Exec
	var args []string
	if t, ok := L.Get(1).(*lua.LTable); ok && L.GetTop() == 1 {
		s.fill(t)
		// The positional items are 1..n without a gap; t.Len() is only a
		// border and may jump over holes.
		n := 0
		for t.RawGetInt(n+1) != lua.LNil {
			n++
		}
		args = make([]string, n)
		for i := range args {
			args[i] = argString(L, "exec", 1, t.RawGetInt(i+1), i+1)
		}
		for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
			if num, ok := k.(lua.LNumber); ok && float64(num) == float64(int(num)) && int(num) >= 1 && int(num) <= n {
				continue // positional, read above
			}
			key, ok := k.(lua.LString)
			if !ok {
				unexpectedKey(L, k)
			}
			option(L, &e, string(key), v)
		}
	} else {
		args = make([]string, L.GetTop())
		for i := range args {
			args[i] = argString(L, "exec", i+1, L.Get(i+1), 0)
		}
	}
	s.record(L, e, args)
	return 0
}

// execFields(exec, k1, v1, k2, v2, ...) stands for exec{...} with the
// table's fields as arguments (see rewrite.go): positional ones keyed by
// their index, named ones by their name, in the script's order. It reads
// them as exec reads the table, without building it, unless the script has
// put another function in exec.
func (s *state) execFields(L *lua.LState) int {
	top := L.GetTop()
	if L.Get(1) != s.execFn {
		return callWithTable(L)
	}
	// items[i] is positional item i+1; names and values the named
	// fields, each once, with its last value, as in a table: in the
	// order they first had a value other than nil.
	var itemsBuf [8]lua.LValue
	var namesBuf [8]string
	var valuesBuf [8]lua.LValue
	items, names, values := itemsBuf[:0], namesBuf[:0], valuesBuf[:0]
	for i := 2; i < top; i += 2 {
		switch k := L.Get(i).(type) {
		case lua.LNumber:
			index := fieldIndex(L, k)
			for len(items) < index {
				items = append(items, lua.LNil)
			}
			items[index-1] = L.Get(i + 1)
		case lua.LString:
			v := L.Get(i + 1)
			if j := slices.Index(names, string(k)); j >= 0 {
				values[j] = v
			} else if v != lua.LNil {
				names, values = append(names, string(k)), append(values, v)
			}
		default: // only from a script calling execFields itself
			unexpectedKey(L, k)
		}
	}
	n := 0
	for n < len(items) && items[n] != lua.LNil {
		n++
	}
	args := make([]string, n)
	for i := range args {
		args[i] = argString(L, "exec", 1, items[i], i+1)
	}
	for i := n; i < len(items); i++ {
		if items[i] != lua.LNil {
			unexpectedKey(L, lua.LNumber(i+1))
		}
	}
	var e Exec
	for j, name := range names {
		if values[j] != lua.LNil {
			option(L, &e, name, values[j])
		}
	}
	s.record(L, e, args)
	return 0
}

// callWithTable calls argument 1 with a table of the fields that follow,
// as execFields receives them, and returns what it returns.
func callWithTable(L *lua.LState) int {
	top := L.GetTop()
	t := L.CreateTable(0, 0)
	for i := 2; i < top; i += 2 {
		switch k := L.Get(i).(type) {
		case lua.LNumber:
			t.RawSetInt(fieldIndex(L, k), L.Get(i+1))
		case lua.LString:
			t.RawSetString(string(k), L.Get(i+1))
		default: // only from a script calling execFields itself
			unexpectedKey(L, k)
		}
	}
	L.Push(L.Get(1))
	L.Push(t)
	L.Call(1, lua.MultRet)
	return L.GetTop() - top
}

// fieldIndex checks the index of a positional field given to execFields,
// which a script can also call by its global's name.
func fieldIndex(L *lua.LState, k lua.LNumber) int {
	index := int(k)
	if float64(index) != float64(k) || index < 1 || index > maxFields {
		unexpectedKey(L, k)
	}
	return index
}

// unexpectedKey raises exec's error for a table key that is neither a
// positional index nor an option name.
func unexpectedKey(L *lua.LState, k lua.LValue) {
	argError(L, "exec", 1, "unexpected key "+k.String())
}

// record adds the Exec for a command line, unless the invocation skipped.
func (s *state) record(L *lua.LState, e Exec, args []string) {
	if len(args) == 0 || args[0] == "" {
		argError(L, "exec", 1, "command expected")
	}
	e.Cmd, e.Args = args[0], args[1:]
	if res := &s.inv.res; !res.Skipped {
		res.Execs = append(res.Execs, e)
	}
}

// argError is L.ArgError for host function fn: gopher-lua would name the
// function by the variable it was called through, which for execFields is
// not the one the script wrote.
func argError(L *lua.LState, fn string, n int, msg string) {
	L.RaiseError("bad argument #%d to %s (%s)", n, fn, msg)
}

// argString accepts a string or a number as argument n of fn, or as item of
// a table argument; anything else is the script's mistake, reported with
// its line.
func argString(L *lua.LState, fn string, n int, v lua.LValue, item int) string {
	fail := func(msg string) {
		if item > 0 {
			msg = fmt.Sprintf("item %d: %s", item, msg)
		}
		argError(L, fn, n, msg)
	}
	var s string
	switch v := v.(type) {
	case lua.LString:
		s = string(v)
	case lua.LNumber:
		s = v.String()
	default:
		fail("string or number expected, got " + v.Type().String())
	}
	if strings.IndexByte(s, 0) >= 0 {
		fail("argument contains a NUL byte")
	}
	return s
}

func option(L *lua.LState, e *Exec, key string, v lua.LValue) {
	bad := func(want string) {
		argError(L, "exec", 1, fmt.Sprintf("option %s: want %s, got %s", key, want, v.Type()))
	}
	switch key {
	case "max":
		n, ok := v.(lua.LNumber)
		if !ok || n < 0 || float64(n) != float64(int(n)) {
			bad("a non-negative integer")
		}
		m := int(n)
		e.Max = &m
	case "resolved_signal":
		// bad raises a Lua error: it does not return.
		if t := v.Type(); t != lua.LTString && t != lua.LTNumber {
			bad("a signal name or number")
		}
		sig, err := rules.ParseSignal(v.String())
		if err != nil {
			argError(L, "exec", 1, fmt.Sprintf("option %s: %v", key, err))
		}
		n := int(sig)
		e.ResolvedSignal = &n
	case "wait":
		if b, ok := v.(lua.LBool); ok {
			val := bool(b)
			e.Wait = &val
			break
		}
		d, ok := duration(v)
		if !ok || d <= 0 {
			bad(`true, false, or a duration ("8s") or seconds`)
		}
		e.WaitAtMost = &d
	case "ignore_resolved", "notify_on_failure":
		b, ok := v.(lua.LBool)
		if !ok {
			bad("a boolean")
		}
		val := bool(b)
		if key == "ignore_resolved" {
			e.IgnoreResolved = &val
		} else {
			e.NotifyOnFailure = &val
		}
	case "timeout", "cooldown":
		d, ok := duration(v)
		if !ok || d < 0 {
			bad(`a duration ("10m") or seconds`)
		}
		if key == "timeout" {
			e.Timeout = &d
		} else {
			e.Cooldown = &d
		}
	case "stdin":
		str, ok := v.(lua.LString)
		if !ok {
			bad("a string")
		}
		in := string(str)
		e.Stdin = &in
	case "key":
		// A number is a key too: exec{..., key = alert.labels.port}.
		if t := v.Type(); t != lua.LTString && t != lua.LTNumber {
			bad("a string")
		}
		k := v.String()
		if k == "" || len(k) > 256 {
			bad("a string of 1 to 256 bytes")
		}
		e.Key = &k
	default:
		msg := "unknown option " + key
		if s := rules.Suggest(key, execOptions); s != "" {
			msg += "; did you mean " + s + "?"
		} else {
			msg += "; the options are " + strings.Join(execOptions, ", ")
		}
		argError(L, "exec", 1, msg)
	}
}

// duration reads a Go duration ("10m") or a number of seconds.
func duration(v lua.LValue) (time.Duration, bool) {
	switch v := v.(type) {
	case lua.LString:
		d, err := time.ParseDuration(string(v))
		return d, err == nil
	case lua.LNumber:
		return time.Duration(float64(v) * float64(time.Second)), true
	}
	return 0, false
}

// execOptions are the names option knows.
var execOptions = []string{"cooldown", "ignore_resolved", "key", "max", "notify_on_failure", "resolved_signal", "stdin", "timeout", "wait"}

// validEnvName reports whether name is a portable environment variable
// name: a letter or underscore, then letters, digits and underscores.
func validEnvName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'a' <= c|0x20 && c|0x20 <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return name != ""
}

// unsafeEnv are the variables env() refuses besides LD_*: they make the
// dynamic loader, a shell or an interpreter load or run code named by the
// value, which a script may have taken from an alert. (glibc ignores most
// of them for setuid programs for the same reason.) PATH stays allowed: a
// rule may choose where its command looks for programs.
var unsafeEnv = map[string]bool{
	"GCONV_PATH": true, "GETCONF_DIR": true, "HOSTALIASES": true, "LOCALDOMAIN": true, "LOCPATH": true,
	"MALLOC_TRACE": true, "NIS_PATH": true, "NLSPATH": true, "RESOLV_HOST_CONF": true, "RES_OPTIONS": true,
	"BASH_ENV": true, "ENV": true, "SHELLOPTS": true, "BASHOPTS": true, "PS4": true,
	"PYTHONPATH": true, "PYTHONHOME": true, "PYTHONSTARTUP": true, "PERL5LIB": true, "PERL5OPT": true,
	"PERLLIB": true, "RUBYLIB": true, "RUBYOPT": true, "NODE_OPTIONS": true,
	"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true,
}

// Unsafe reports whether env() refuses a variable name: the dynamic
// loader's LD_* and the others of unsafeEnv.
func Unsafe(name string) bool {
	return strings.HasPrefix(name, "LD_") || unsafeEnv[name]
}

// env(name, value) adds a variable to every command this invocation execs.
func (s *state) env(L *lua.LState) int {
	name := L.CheckString(1)
	if !validEnvName(name) {
		L.ArgError(1, fmt.Sprintf("invalid environment variable name %q", name))
	}
	if strings.HasPrefix(name, "AMX_") {
		L.ArgError(1, fmt.Sprintf("%s: AMX_ names are reserved for amx", name))
	}
	if Unsafe(name) {
		L.ArgError(1, fmt.Sprintf("%s: refused, it makes the command load or run other code", name))
	}
	value := argString(L, "env", 2, L.Get(2), 0)
	s.inv.res.Env = append(s.inv.res.Env, name+"="+value)
	return 0
}

// skip(reason) ends the invocation; nothing it exec'd runs. It stays
// skipped even if the script catches the error with pcall.
func (s *state) skip(L *lua.LState) int {
	s.skipWith(L, 1)
	// Level 0 and a constant: skipping is common enough that formatting a
	// message shows in profiles, and Run knows it skipped.
	L.Error(skipped, 0)
	return 0
}

// skipReturn(skip, reason) stands for the statement skip(reason) in the
// main chunk (see rewrite.go): it skips and answers true, for the script to
// return, unless the script has put another function in skip.
func (s *state) skipReturn(L *lua.LState) int {
	if L.Get(1) != s.skipFn {
		L.Call(L.GetTop()-1, 0)
		L.Push(lua.LFalse)
		return 1
	}
	s.skipWith(L, 2)
	L.Push(lua.LTrue)
	return 1
}

// skipWith records a skip whose reason is argument n.
func (s *state) skipWith(L *lua.LState, n int) {
	reason := ""
	switch v := L.Get(n).(type) {
	case lua.LString:
		reason = string(v)
	case *lua.LNilType:
	default:
		// As L.OptString would say it, but naming skip: n is not the
		// argument's number when skipReturn stands for skip.
		L.RaiseError("bad argument #1 to skip (string expected, got %s)", v.Type())
	}
	res := &s.inv.res
	res.Skipped = true
	res.SkipReason = reason
	res.Execs = nil
}

// skipped is the error value skip() ends an invocation with.
var skipped lua.LValue = lua.LString("skip()")

// log(...) writes a debug line tagged with route and fingerprint.
func (s *state) log(L *lua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	inv := &s.inv
	inv.log.Debug("lua", "route", inv.route, "fingerprint", inv.alert.Fingerprint, "line", currentLine(L),
		"message", strings.Join(parts, " "))
	return 0
}

// currentLine is the line of the script that called a host function.
func currentLine(L *lua.LState) int {
	dbg, ok := L.GetStack(1)
	if !ok {
		return 0
	}
	if _, err := L.GetInfo("l", dbg, lua.LNil); err != nil {
		return 0
	}
	return dbg.CurrentLine
}
