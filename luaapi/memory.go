package luaapi

import (
	"context"
	"runtime/metrics"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// gopher-lua has no allocation hook, so memory is bounded from outside: while
// any script runs, a watchdog samples the Go heap and cancels every running
// invocation once it passes the limit. A single instruction can still
// allocate, so string.rep, the one cheap way to make a huge string at once,
// is capped too; doubling a string with .. takes an instruction per step,
// which the watchdog sees.

const (
	watchEvery = 2 * time.Millisecond
	heapMetric = "/memory/classes/heap/objects:bytes"
)

// maxRep caps the length of one string.rep result.
const maxRep = 16 << 20

// watchdog cancels invocations when the heap passes limit.
type watchdog struct {
	limit uint64

	mu       sync.Mutex
	active   map[*invocation]context.CancelFunc
	watching bool
}

// enter registers a running invocation and starts watching if needed.
func (w *watchdog) enter(inv *invocation, cancel context.CancelFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active == nil {
		w.active = make(map[*invocation]context.CancelFunc)
	}
	w.active[inv] = cancel
	if !w.watching {
		w.watching = true
		go w.watch()
	}
}

func (w *watchdog) leave(inv *invocation) {
	w.mu.Lock()
	delete(w.active, inv)
	w.mu.Unlock()
}

// watch runs while invocations are active.
func (w *watchdog) watch() {
	sample := []metrics.Sample{{Name: heapMetric}}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		if len(w.active) == 0 {
			w.watching = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		metrics.Read(sample)
		if sample[0].Value.Uint64() <= w.limit {
			continue
		}
		w.mu.Lock()
		for inv, cancel := range w.active {
			inv.overMemory.Store(true)
			cancel()
		}
		w.mu.Unlock()
	}
}

// cappedRep is string.rep with a cap on the result's length.
func cappedRep(rep lua.LValue) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		n := L.CheckInt(2)
		if n > 0 && len(s) > 0 && len(s) > maxRep/n {
			L.RaiseError("string.rep: result longer than %d bytes", maxRep)
		}
		L.Push(rep)
		L.Push(lua.LString(s))
		L.Push(lua.LNumber(n))
		L.Call(2, 1)
		return 1
	}
}
