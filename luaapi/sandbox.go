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
// invocation on it, so scripts never see them directly: an invocation's
// environment is a table of its own that reads through to them, library
// tables are read-only proxies, and every metatable a script could reach is
// protected.
type state struct {
	L   *lua.LState
	ctx *stopCtx // the watchdog's way to stop the running script

	// envTable is the environment (the _G) of invocations on this state.
	// A script that adds a global marks it dirty, and the next invocation
	// gets a new one; a clean one is reused.
	envTable *lua.LTable
	envDirty bool
	// envMeta makes envTable read through to the globals; it is protected
	// so getmetatable(_G) cannot reach them.
	envMeta *lua.LTable

	// proxies are the tables not yet filled (see proxy.go), but for the
	// invocation's alert and msg, kept outside the map to save its cost.
	proxies   map[*lua.LTable]*source
	proxyMeta *lua.LTable
	next      *lua.LFunction
	// The invocation's alert, alert.labels, alert.annotations and msg,
	// kept for the next one while untouched.
	alertT, labelsT, annotationsT, msgT         *lua.LTable
	alertSrc, labelsSrc, annotationsSrc, msgSrc source
	// The alert proxy's own metatable, and the table its __index reads.
	alertMeta, alertBack *lua.LTable
	backed               backed
	// What prefill set on alert.labels and alert.annotations.
	labelsSet, annotationsSet prefilled

	inv invocation // the one running now, read by the host functions

	// The global exec and skip, as execFields and skipReturn know them.
	execFn, skipFn *lua.LFunction
	stateFn        lua.LValue // the state library, as scripts get it

	fns map[*Script]*lua.LFunction // the scripts' main functions on this state

	// handler is the message handler of every run. It passes the error
	// on as it is; without one, gopher-lua renders a traceback for every
	// error, skip() included, and amx never shows it.
	handler *lua.LFunction
}

// function returns the state's function for a script. The main function of
// a chunk has no upvalues, so one serves every invocation.
func (s *state) function(sc *Script) *lua.LFunction {
	fn, ok := s.fns[sc]
	if !ok {
		if len(s.fns) >= 256 { // scripts of an old configuration
			clear(s.fns)
		}
		fn = s.L.NewFunctionFromProto(sc.proto)
		s.fns[sc] = fn
	}
	return fn
}

func newState() *state {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 256, RegistrySize: 256, RegistryMaxSize: 1024 * 64, RegistryGrowStep: 256})
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
	s := &state{L: L, ctx: newStopCtx(), proxies: make(map[*lua.LTable]*source), fns: make(map[*Script]*lua.LFunction)}
	s.inv.stopCtx = s.ctx
	L.SetContext(s.ctx)
	s.handler = L.NewFunction(func(L *lua.LState) int { return 1 })
	g := L.G.Global
	// Forbidden names stay defined, so that a script using one learns why
	// it fails instead of reading "attempt to call a non-function object".
	for _, name := range removed {
		g.RawSetString(name, L.NewFunction(unavailable(name)))
	}
	for _, name := range []string{"io", "os", "package", "debug", "coroutine"} {
		lib := L.CreateTable(0, 0)
		mt := s.protectedMeta()
		mt.RawSetString("__index", L.NewFunction(unavailable(name)))
		mt.RawSetString("__newindex", L.NewFunction(unavailable(name)))
		lib.Metatable = mt
		g.RawSetString(name, lib)
	}
	g.RawSetString("_G", lua.LNil) // each invocation's _G is its own environment
	g.RawSetString("getmetatable", L.NewFunction(s.getmetatable))
	g.RawSetString("setmetatable", L.NewFunction(s.setmetatable))
	g.RawSetString("rawset", L.NewFunction(s.rawset))
	s.next = L.NewFunction(s.nextKey)
	g.RawSetString("next", s.next)
	g.RawSetString("pairs", L.NewFunction(s.pairs))
	g.RawSetString("rawget", L.NewFunction(s.rawget))

	str := g.RawGetString("string").(*lua.LTable)
	// gopher-lua makes the string library its own metatable, with
	// __index = itself, so ("").__index was the library, writable.
	str.RawSetString("__index", lua.LNil)
	str.RawSetString("dump", lua.LNil)
	str.RawSetString("byte", L.NewFunction(cappedByte(str.RawGetString("byte"))))
	g.RawSetString("unpack", L.NewFunction(cappedUnpack(g.RawGetString("unpack"))))
	str.RawSetString("rep", L.NewFunction(cappedRep(str.RawGetString("rep"))))
	for name, fn := range map[string]lua.LGFunction{"find": strFind, "match": strMatch, "gmatch": strGmatch, "gsub": strGsub,
		"format": strFormat} {
		str.RawSetString(name, L.NewFunction(fn))
	}
	tab := g.RawGetString("table").(*lua.LTable)
	tab.RawSetString("concat", L.NewFunction(cappedConcat(tab.RawGetString("concat"))))
	for _, name := range []string{"insert", "remove", "sort"} {
		tab.RawSetString(name, s.writing(tab.RawGetString(name).(*lua.LFunction)))
	}
	for _, name := range []string{"string", "table", "math"} {
		g.RawSetString(name, s.readOnly(g.RawGetString(name).(*lua.LTable)))
	}
	// ("x"):rep() reads the library through the strings' metatable: make
	// it read through the same read-only proxy, and hide it.
	strMeta := s.protectedMeta()
	strMeta.RawSetString("__index", g.RawGetString("string"))
	L.SetMetatable(lua.LString(""), strMeta)

	for name, fn := range map[string]lua.LGFunction{
		"env":          s.env,
		"log":          s.log,
		skipReturnName: s.skipReturn,
		execFieldsName: s.execFields,
		concatName:     concat,
		incrStmtName:   s.incrStmt,
	} {
		g.RawSetString(name, L.NewFunction(fn))
	}
	s.execFn, s.skipFn = L.NewFunction(s.exec), L.NewFunction(s.skip)
	g.RawSetString("exec", s.execFn)
	g.RawSetString("skip", s.skipFn)
	g.RawSetString("state", s.stateLib())

	s.envMeta = s.protectedMeta()
	s.envMeta.RawSetString("__index", g)
	s.envMeta.RawSetString("__newindex", L.NewFunction(s.setGlobal))
	index, newIndex := L.NewFunction(s.proxyIndex), L.NewFunction(s.proxyNewIndex)
	s.proxyMeta = L.CreateTable(0, 2)
	s.proxyMeta.RawSetString("__index", index)
	s.proxyMeta.RawSetString("__newindex", newIndex)
	s.alertBack = L.CreateTable(0, 3)
	s.alertBack.Metatable = s.proxyMeta
	s.alertMeta = L.CreateTable(0, 2)
	s.alertMeta.RawSetString("__index", s.alertBack)
	s.alertMeta.RawSetString("__newindex", newIndex)
	return s
}

// begin prepares the state for s.inv and returns its environment. The
// environment and the alert and msg proxies are reused while they are clean:
// allocating them is most of the cost of a short rule.
func (s *state) begin(sc *Script) *lua.LTable {
	if s.envTable == nil || s.envDirty {
		s.envTable = s.L.CreateTable(0, 4)
		s.envTable.Metatable = s.envMeta
		s.envDirty = false
	}
	// Pointers are written only when they change, and the sources field
	// by field: see runOn.
	s.reuse(&s.alertT, s.alertMeta)
	if s.labelsSet.written(s.labelsT) {
		s.labelsT = nil
	}
	if s.annotationsSet.written(s.annotationsT) {
		s.annotationsT = nil
	}
	s.reuse(&s.labelsT, s.proxyMeta)
	s.reuse(&s.annotationsT, s.proxyMeta)
	s.reuse(&s.msgT, s.proxyMeta)
	a := s.inv.alert
	s.alertSrc.alert = a
	if s.alertSrc.kids[0] != s.labelsT || s.alertSrc.kids[1] != s.annotationsT {
		s.alertSrc.kids[0], s.alertSrc.kids[1] = s.labelsT, s.annotationsT
	}
	s.labelsSrc.strs = orEmpty(a.Labels)
	s.annotationsSrc.strs = orEmpty(a.Annotations)
	s.msgSrc.msg = s.inv.msg
	s.loadAlert()
	s.labelsSet.prefill(s.labelsT, s.labelsSrc.strs, sc.labelKeys)
	s.annotationsSet.prefill(s.annotationsT, s.annotationsSrc.strs, sc.annotationKeys)
	// A script may have reassigned these without adding a key.
	s.setEnv("_G", s.envTable)
	s.setEnv("alert", s.alertT)
	s.setEnv("msg", s.msgT)
	return s.envTable
}

// reuse keeps *t if it is still an untouched proxy with metatable meta, or
// else makes a new one for source() to recognise as alert, alert.labels,
// alert.annotations or msg.
func (s *state) reuse(t **lua.LTable, meta *lua.LTable) {
	if *t == nil || (*t).Metatable != meta {
		*t = s.newProxy(meta)
	}
}

// orEmpty returns m, or an empty map for nil: a proxy's source must be
// set for the proxy to be filled on a write.
func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return noStrings
	}
	return m
}

var noStrings = map[string]string{}

func (s *state) setEnv(key string, v lua.LValue) {
	if s.envTable.RawGetString(key) != v {
		s.envTable.RawSetString(key, v)
	}
}

// end forgets the invocation's tables.
func (s *state) end() {
	// What msg's fields made is this invocation's; the rest is kept for
	// the next, but no Go data of this one, which may be large.
	for i, kid := range s.msgSrc.kids {
		if kid != nil {
			s.msgSrc.kids[i] = nil
		}
	}
	s.alertSrc.alert, s.labelsSrc.strs, s.annotationsSrc.strs, s.msgSrc.msg = nil, nil, nil, nil
	switch {
	case len(s.proxies) > 64:
		s.proxies = make(map[*lua.LTable]*source) // clear keeps a big map's buckets
	case len(s.proxies) > 0:
		clear(s.proxies)
	}
}

// setGlobal is the environment's __newindex: the script adds a global.
func (s *state) setGlobal(L *lua.LState) int {
	s.envDirty = true
	L.CheckTable(1).RawSet(L.CheckAny(2), L.CheckAny(3))
	return 0
}

// writing wraps a table function that writes to its first argument without
// metamethods (table.insert, remove, sort), so that it refuses the shared
// read-only tables as rawset does, fills a proxy first and marks the
// environment dirty.
func (s *state) writing(fn *lua.LFunction) *lua.LFunction {
	return s.L.NewFunction(func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok {
			s.checkWritable(t)
			s.rawWrite(t)
		}
		return fn.GFunction(L)
	})
}

// checkWritable raises an error for a table with a protected metatable,
// the read-only library proxies shared between invocations among them;
// the environment is the exception.
func (s *state) checkWritable(t *lua.LTable) {
	if mt, ok := t.Metatable.(*lua.LTable); ok && mt.RawGetString("__metatable") != lua.LNil && t != s.envTable {
		s.L.RaiseError(readOnlyMsg)
	}
}

// rawWrite prepares t for a write that bypasses metamethods.
func (s *state) rawWrite(t *lua.LTable) {
	s.fill(t)
	if t == s.envTable {
		s.envDirty = true
	}
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
	mt := s.L.CreateTable(0, 3)
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
	proxy := s.L.CreateTable(0, 0)
	proxy.Metatable = mt
	return proxy
}

// getmetatable honours __metatable, which gopher-lua's own ignores, and
// shows a proxy as the plain table it stands for.
func (s *state) getmetatable(L *lua.LState) int {
	mt := L.GetMetatable(L.CheckAny(1))
	if mt == s.proxyMeta || mt == s.alertMeta {
		mt = lua.LNil
	}
	if t, ok := mt.(*lua.LTable); ok {
		if p := t.RawGetString("__metatable"); p != lua.LNil {
			L.Push(p)
			return 1
		}
	}
	L.Push(mt)
	return 1
}

// setmetatable is for tables only: on a string or number it would change
// the metatable of every such value, for later alerts too.
func (s *state) setmetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	L.CheckTypes(2, lua.LTNil, lua.LTTable)
	s.fill(t)
	if mt, ok := t.Metatable.(*lua.LTable); ok && mt.RawGetString("__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = L.Get(2)
	L.SetTop(1)
	return 1
}

// rawset refuses tables with a protected metatable, because the read-only
// library proxies are shared between invocations; the environment is the
// exception.
func (s *state) rawset(L *lua.LState) int {
	t := L.CheckTable(1)
	s.checkWritable(t)
	s.rawWrite(t)
	t.RawSet(L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}
