// Package luaapi runs amx's Lua dispatch rules: it compiles scripts once,
// keeps a pool of sandboxed Lua states, hands a script its alert as plain
// tables, and records what the host functions exec(), env(), skip() and
// log() ask for. It never starts a process: exec() only records.
package luaapi

import (
	lua "github.com/yuin/gopher-lua"
)

// removed are the base functions a rule must not have: file access, loading
// code, reaching environments, the collector, and debugging aids.
var removed = []string{
	"dofile", "loadfile", "load", "loadstring", "require", "module",
	"getfenv", "setfenv", "collectgarbage", "newproxy", "_printregs", "print",
}

const readOnlyMsg = "attempt to modify a read-only table"

// state is one sandboxed Lua state. Its globals are shared by every
// invocation on it, so scripts never see them directly: each invocation gets
// a fresh environment table that reads through to them, library tables are
// read-only proxies, and every metatable a script could reach is protected.
type state struct {
	L *lua.LState
	// envMeta makes an invocation's environment read through to the
	// globals; it is protected so getmetatable(_G) cannot reach them.
	envMeta *lua.LTable
	// msgMeta builds msg.alerts on first use.
	msgMeta *lua.LTable
	cur     *invocation // the invocation running now, for host functions
}

func newState() *state {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 256, RegistrySize: 1024 * 4, RegistryMaxSize: 1024 * 64})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	s := &state{L: L}
	g := L.G.Global
	// Forbidden names stay defined, so that a script using one learns why
	// it fails instead of reading "attempt to call a non-function object".
	for _, name := range removed {
		g.RawSetString(name, L.NewFunction(unavailable(name)))
	}
	for _, name := range []string{"io", "os", "package", "debug", "coroutine"} {
		lib := L.NewTable()
		mt := s.protectedMeta()
		mt.RawSetString("__index", L.NewFunction(unavailable(name)))
		mt.RawSetString("__newindex", L.NewFunction(unavailable(name)))
		lib.Metatable = mt
		g.RawSetString(name, lib)
	}
	g.RawSetString("_G", lua.LNil) // each invocation's _G is its own environment
	g.RawSetString("getmetatable", L.NewFunction(protectedGetMetatable))
	g.RawSetString("setmetatable", L.NewFunction(tableSetMetatable))
	g.RawSetString("rawset", L.NewFunction(checkedRawSet))

	str := g.RawGetString("string").(*lua.LTable)
	str.RawSetString("dump", lua.LNil)
	str.RawSetString("rep", L.NewFunction(cappedRep(str.RawGetString("rep"))))
	for _, name := range []string{"string", "table", "math"} {
		g.RawSetString(name, s.readOnly(g.RawGetString(name).(*lua.LTable)))
	}
	// ("x"):rep() goes through the string metatable to the real library;
	// protect it so getmetatable("") cannot hand the library out.
	if mt, ok := L.GetMetatable(lua.LString("")).(*lua.LTable); ok {
		mt.RawSetString("__metatable", lua.LFalse)
	}

	for name, fn := range map[string]lua.LGFunction{
		"exec": s.exec,
		"env":  s.env,
		"skip": s.skip,
		"log":  s.log,
	} {
		g.RawSetString(name, L.NewFunction(fn))
	}

	s.envMeta = s.protectedMeta()
	s.envMeta.RawSetString("__index", g)
	s.msgMeta = s.protectedMeta()
	s.msgMeta.RawSetString("__index", L.NewFunction(s.msgIndex))
	return s
}

func unavailable(name string) lua.LGFunction {
	return func(L *lua.LState) int {
		L.RaiseError("%s is not available in amx rules", name)
		return 0
	}
}

// protectedMeta returns a metatable that getmetatable hides and
// setmetatable refuses to replace.
func (s *state) protectedMeta() *lua.LTable {
	mt := s.L.NewTable()
	mt.RawSetString("__metatable", lua.LFalse)
	return mt
}

// readOnly returns a proxy that reads through to t and refuses writes.
func (s *state) readOnly(t *lua.LTable) *lua.LTable {
	mt := s.protectedMeta()
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", s.L.NewFunction(func(L *lua.LState) int {
		L.RaiseError(readOnlyMsg)
		return 0
	}))
	proxy := s.L.NewTable()
	proxy.Metatable = mt
	return proxy
}

// protectedGetMetatable honours __metatable, which gopher-lua's own
// getmetatable ignores.
func protectedGetMetatable(L *lua.LState) int {
	mt := L.GetMetatable(L.CheckAny(1))
	if t, ok := mt.(*lua.LTable); ok {
		if p := t.RawGetString("__metatable"); p != lua.LNil {
			L.Push(p)
			return 1
		}
	}
	L.Push(mt)
	return 1
}

// tableSetMetatable is setmetatable for tables only: on a string or number
// it would change the metatable of every such value, for later alerts too.
func tableSetMetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	L.CheckTypes(2, lua.LTNil, lua.LTTable)
	if mt, ok := t.Metatable.(*lua.LTable); ok && mt.RawGetString("__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = L.Get(2)
	L.SetTop(1)
	return 1
}

// checkedRawSet is rawset that refuses tables with a protected metatable:
// the read-only proxies are shared between invocations.
func checkedRawSet(L *lua.LState) int {
	t := L.CheckTable(1)
	if mt, ok := t.Metatable.(*lua.LTable); ok && mt.RawGetString("__metatable") != lua.LNil {
		L.RaiseError(readOnlyMsg)
	}
	t.RawSet(L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}
