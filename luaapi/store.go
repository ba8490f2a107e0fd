package luaapi

import (
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"
)

// StateValue is a value a script keeps in the state: a string or a number.
type StateValue struct {
	Str   string
	Num   float64
	IsNum bool
}

// StateWrite is one change a script asked for with state.set, state.incr or
// state.del. Value is what set stores, or what incr adds.
type StateWrite struct {
	Op    string // "set", "incr", "del"
	Key   string
	Value StateValue
	TTL   time.Duration
}

// StateReader reads a route's value for state.get. It sees the store as it
// is: the writes of the notification being decided are not in it yet.
type StateReader func(route, key string) (StateValue, bool, error)

// Bounds on what one invocation may ask of the state.
const (
	maxStateKey    = 256
	maxStateValue  = 4096
	maxStateWrites = 100
)

// stateLib is the state global. gopher-luar binds it: a struct value, so
// scripts can call its functions but not replace them (a pointer would let
// state.get = f change it for every route on the Lua state).
type stateLib struct {
	Get  func(*luar.LState) int `luar:"get"`
	Set  func(*luar.LState) int `luar:"set"`
	Incr func(*luar.LState) int `luar:"incr"`
	Del  func(*luar.LState) int `luar:"del"`
}

func (s *state) stateLib() lua.LValue {
	s.stateFn = luar.New(s.L, stateLib{
		Get:  func(L *luar.LState) int { return s.stateGet(L.LState) },
		Set:  func(L *luar.LState) int { return s.stateSet(L.LState) },
		Incr: func(L *luar.LState) int { return s.stateIncr(L.LState) },
		Del:  func(L *luar.LState) int { return s.stateDel(L.LState) },
	})
	return s.stateFn
}

// stateKey checks the key argument of a state function.
func stateKey(L *lua.LState, fn string) string {
	v := L.Get(1)
	if t := v.Type(); t != lua.LTString && t != lua.LTNumber {
		argError(L, fn, 1, "want a key (a string), got "+t.String())
	}
	k := v.String()
	if k == "" || len(k) > maxStateKey {
		argError(L, fn, 1, fmt.Sprintf("a key is 1 to %d bytes, got %d", maxStateKey, len(k)))
	}
	return k
}

// read is the key's value as this invocation sees it: its own writes, then
// the store.
func (s *state) read(L *lua.LState, fn, key string) (StateValue, bool) {
	w := s.inv.res.Writes
	for i := len(w) - 1; i >= 0; i-- {
		if w[i].Key != key {
			continue
		}
		switch w[i].Op {
		case "del":
			return StateValue{}, false
		case "set":
			return w[i].Value, true
		}
		// incr: the store's value plus every increment of this invocation
		base, ok := s.stored(L, fn, key)
		if ok && !base.IsNum {
			L.RaiseError("%s: %s: the value is a string, not a number", fn, key)
		}
		for _, x := range w[:i+1] {
			switch {
			case x.Key != key:
			case x.Op == "incr":
				base.Num += x.Value.Num
			}
		}
		base.IsNum, base.Str = true, ""
		return base, true
	}
	return s.stored(L, fn, key)
}

func (s *state) stored(L *lua.LState, fn, key string) (StateValue, bool) {
	read := s.inv.msg.State
	if read == nil {
		return StateValue{}, false
	}
	v, ok, err := read(s.inv.route, key)
	if err != nil {
		L.RaiseError("%s: %v", fn, err)
	}
	return v, ok
}

func push(L *lua.LState, v StateValue, ok bool) int {
	switch {
	case !ok:
		L.Push(lua.LNil)
	case v.IsNum:
		L.Push(lua.LNumber(v.Num))
	default:
		L.Push(lua.LString(v.Str))
	}
	return 1
}

// state.get(key) is the value, or nil.
func (s *state) stateGet(L *lua.LState) int {
	key := stateKey(L, "state.get")
	v, ok := s.read(L, "state.get", key)
	return push(L, v, ok)
}

// state.set(key, value [, ttl]) keeps a string or a number, for ttl (a
// duration or seconds) or until deleted.
func (s *state) stateSet(L *lua.LState) int {
	key := stateKey(L, "state.set")
	var v StateValue
	switch x := L.Get(2).(type) {
	case lua.LNumber:
		v = StateValue{Num: float64(x), IsNum: true}
	case lua.LString:
		if len(x) > maxStateValue {
			argError(L, "state.set", 2, fmt.Sprintf("a value is at most %d bytes, got %d", maxStateValue, len(x)))
		}
		v = StateValue{Str: string(x)}
	default:
		argError(L, "state.set", 2, "want a string or a number, got "+x.Type().String())
	}
	s.write(L, "state.set", StateWrite{Op: "set", Key: key, Value: v, TTL: ttlArg(L, "state.set", 3)})
	return 0
}

// state.incr(key [, n [, ttl]]) adds n (default 1) and returns the sum. A
// ttl given when the key is created is its lifetime: the window runs from
// the first increment.
func (s *state) stateIncr(L *lua.LState) int {
	key := s.incr(L)
	v, ok := s.read(L, "state.incr", key)
	return push(L, v, ok)
}

// incrStmt stands for the statement state.incr(...) (see rewrite.go): it
// records the increment without reading the sum. Its first argument is the
// script's state; if that is not the library, it calls its incr as
// written.
func (s *state) incrStmt(L *lua.LState) int {
	if L.Get(1) != s.stateFn {
		fn := L.GetField(L.Get(1), "incr")
		L.Remove(1)
		L.Insert(fn, 1)
		L.Call(L.GetTop()-1, 0)
		return 0
	}
	L.Remove(1)
	s.incr(L)
	return 0
}

// incr records the increment state.incr(key [, n [, ttl]]) asks for, and
// returns its key.
func (s *state) incr(L *lua.LState) string {
	key := stateKey(L, "state.incr")
	n := 1.0
	if v := L.Get(2); v != lua.LNil {
		num, ok := v.(lua.LNumber)
		if !ok {
			argError(L, "state.incr", 2, "want a number, got "+v.Type().String())
		}
		n = float64(num)
	}
	s.write(L, "state.incr", StateWrite{Op: "incr", Key: key, Value: StateValue{Num: n, IsNum: true}, TTL: ttlArg(L, "state.incr", 3)})
	return key
}

// state.del(key) removes a key.
func (s *state) stateDel(L *lua.LState) int {
	s.write(L, "state.del", StateWrite{Op: "del", Key: stateKey(L, "state.del")})
	return 0
}

func (s *state) write(L *lua.LState, fn string, w StateWrite) {
	if len(s.inv.res.Writes) >= maxStateWrites {
		L.RaiseError("%s: more than %d state changes in one run", fn, maxStateWrites)
	}
	s.inv.res.Writes = append(s.inv.res.Writes, w)
}

// ttlArg reads an optional TTL: a duration ("24h") or seconds.
func ttlArg(L *lua.LState, fn string, n int) time.Duration {
	v := L.Get(n)
	if v == lua.LNil {
		return 0
	}
	d, ok := duration(v)
	if !ok || d <= 0 {
		argError(L, fn, n, `want a TTL: a duration ("24h") or seconds`)
	}
	return d
}
