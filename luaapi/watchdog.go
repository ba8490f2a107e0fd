package luaapi

import (
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// gopher-lua checks a state's context between instructions, and that is its
// only way to stop a script. A context per invocation (with a timer) would
// cost more than a short rule itself, so each state keeps one stopCtx for
// its life, and a watchdog goroutine closes it when the invocation on that
// state passes its deadline, when its caller gives up, or when the live
// objects of the Go heap pass the memory limit: gopher-lua has no
// allocation hook, so memory is bounded from outside. The watchdog runs
// only while scripts do, and checks every watchEvery.
//
// A single instruction can still allocate a lot, so string.rep, the one
// cheap way to make a huge string at once, is capped too; doubling a string
// with .. takes an instruction per step, which the watchdog sees.

const watchEvery = 2 * time.Millisecond

// maxRep caps the length of a string that one call of string.rep,
// string.format, string.gsub or table.concat builds: in one Go call, a
// string could grow past what the watchdog's sampling catches in time.
const maxRep = 16 << 20

// stopCtx is a state's context. Once stopped, the state is not used again.
//
// gopher-lua selects on Done() before every instruction, and a receive from
// a channel that is never ready still costs a tenth of a short rule. So
// Done is nil until the watchdog stops the state, and a channel already
// closed after: a select on a nil channel costs nothing. A context's Done
// should return the same channel every time; gopher-lua, its only user,
// reads it afresh for every instruction, which is what this relies on.
type stopCtx struct {
	stopped atomic.Bool
}

var _ context.Context = (*stopCtx)(nil)

// closedChan is the Done of every stopped stopCtx.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newStopCtx() *stopCtx { return &stopCtx{} }

func (c *stopCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *stopCtx) Value(any) any               { return nil }

func (c *stopCtx) Done() <-chan struct{} {
	if c.stopped.Load() {
		return closedChan
	}
	return nil
}

func (c *stopCtx) Err() error {
	if c.stopped.Load() {
		return errStopped
	}
	return nil
}

var errStopped = errors.New("stopped")

func (c *stopCtx) stop() { c.stopped.Store(true) }

// watchdog stops invocations; see above.
type watchdog struct {
	timeout time.Duration // zero: no deadline
	limit   uint64        // heap bytes

	mu sync.Mutex
	// active is a list of the running invocations, linked through their
	// prev and next; cheaper to join and leave than a map.
	active   *invocation
	watching bool
}

// enter registers a running invocation and starts watching if needed.
// Reading the clock costs more than a short rule's share of this, so an
// invocation's start is when the watchdog first sees it running: never
// before it started, so a deadline never passes early. (Taking the
// watchdog's last tick instead passed deadlines early whenever the watchdog
// itself had been kept waiting, as it is on a busy machine.)
func (w *watchdog) enter(inv *invocation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.watching {
		w.watching = true
		go w.watch()
	}
	inv.started = time.Time{}
	inv.prev, inv.next = nil, w.active
	if w.active != nil {
		w.active.prev = inv
	}
	w.active = inv
}

// leave unregisters an invocation. After it returns, the watchdog no longer
// touches inv, so inv.stopped can be read without a lock.
func (w *watchdog) leave(inv *invocation) {
	w.mu.Lock()
	if inv.prev != nil {
		inv.prev.next = inv.next
	} else {
		w.active = inv.next
	}
	if inv.next != nil {
		inv.next.prev = inv.prev
	}
	w.mu.Unlock()
}

// watch runs while invocations are active.
func (w *watchdog) watch() {
	memory := newMemoryCheck(w.limit)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for range t.C {
		overMemory := memory.over()
		now := time.Now()
		w.mu.Lock()
		if w.active == nil {
			w.watching = false
			w.mu.Unlock()
			return
		}
		for inv := w.active; inv != nil; inv = inv.next {
			switch {
			case inv.stopped != "":
			case overMemory:
				inv.stop(KindMemory)
			case inv.ctx.Err() != nil:
				inv.stop(KindCanceled)
			case inv.started.IsZero():
				inv.started = now
			case w.timeout > 0 && now.Sub(inv.started) > w.timeout:
				inv.stop(KindTimeout)
			}
		}
		w.mu.Unlock()
	}
}

// memoryCheck tells whether the Go heap holds more than a limit in live
// objects. The heap's size counts garbage not yet collected too: up to
// twice the live heap by default, and all of it up to GOMEMLIMIT with
// GOGC=off. So a heap past the limit is collected before it counts; but
// while live objects are past it, at most every collectEvery, as
// collecting on every tick would only burn the CPU.
type memoryCheck struct {
	limit     uint64
	sample    []metrics.Sample
	collected time.Time // when over last collected
}

const collectEvery = 100 * time.Millisecond

func newMemoryCheck(limit uint64) *memoryCheck {
	return &memoryCheck{limit: limit, sample: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"}, // as the last collection found it
	}}
}

func (m *memoryCheck) over() bool {
	metrics.Read(m.sample)
	heap, live := m.sample[0].Value.Uint64(), m.sample[1].Value.Uint64()
	if heap <= m.limit || (live > m.limit && time.Since(m.collected) < collectEvery) {
		return heap > m.limit
	}
	runtime.GC()
	m.collected = time.Now()
	metrics.Read(m.sample)
	return m.sample[0].Value.Uint64() > m.limit
}

// maxResults caps the values one call returns: gopher-lua's registry
// overflows past 65,536, and that error escaped its PCall. It is Lua 5.1's
// own limit (LUAI_MAXCSTACK).
const maxResults = 8000

// cappedUnpack is unpack, refusing more than maxResults values as Lua 5.1
// does.
func cappedUnpack(unpack lua.LValue) lua.LGFunction {
	return func(L *lua.LState) int {
		t := L.CheckTable(1)
		i, j := L.OptInt(2, 1), L.OptInt(3, t.Len())
		if i <= j && (j-i >= maxResults || j-i < 0) {
			L.RaiseError("too many results to unpack")
		}
		return forward(L, unpack)
	}
}

// cappedByte is string.byte, refusing more than maxResults values as Lua
// 5.1 does.
func cappedByte(byteFn lua.LValue) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		i, j := L.OptInt(2, 1), L.OptInt(3, -1)
		if i < 0 {
			i += len(s) + 1
		}
		if j < 0 {
			j += len(s) + 1
		}
		if max(i, 1) <= min(j, len(s)) && min(j, len(s))-max(i, 1) >= maxResults {
			L.RaiseError("string slice too long")
		}
		return forward(L, byteFn)
	}
}

// concat is the `..` of a chain of operands (see boundConcat): gopher-lua's
// OP_CONCAT step for step, from the right, with metamethods for operands
// that are neither strings nor numbers, but refusing a string longer than
// maxRep before building it.
func concat(L *lua.LState) int {
	n := L.GetTop()
	rhs := L.Get(n)
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if !lua.LVCanConvToString(lhs) || !lua.LVCanConvToString(rhs) {
			op := L.GetMetaField(lhs, "__concat")
			if op == lua.LNil {
				op = L.GetMetaField(rhs, "__concat")
			}
			if op.Type() != lua.LTFunction {
				L.RaiseError("cannot perform concat operation between %v and %v", lhs.Type(), rhs.Type())
			}
			L.Push(op)
			L.Push(lhs)
			L.Push(rhs)
			L.Call(2, 1)
			rhs = L.Get(-1)
			L.Pop(1)
			i--
			continue
		}
		// The run of strings and numbers that ends at rhs, joined at once.
		from, size := i, len(lua.LVAsString(rhs))
		for from >= 1 && lua.LVCanConvToString(L.Get(from)) {
			if size += len(lua.LVAsString(L.Get(from))); size > maxRep {
				L.RaiseError("string concatenation: result longer than %d bytes", maxRep)
			}
			from--
		}
		var b strings.Builder
		b.Grow(size)
		for k := from + 1; k <= i; k++ {
			b.WriteString(lua.LVAsString(L.Get(k)))
		}
		b.WriteString(lua.LVAsString(rhs))
		rhs = lua.LString(b.String())
		i = from
	}
	L.Push(rhs)
	return 1
}

// cappedRep is string.rep with a cap on the result's length.
func cappedRep(rep lua.LValue) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		n := L.CheckInt(2)
		if n > 0 && len(s) > 0 && len(s) > maxRep/n {
			L.RaiseError("string.rep: result longer than %d bytes", maxRep)
		}
		return forward(L, rep)
	}
}

// cappedConcat is table.concat, refusing a result longer than maxRep before
// building it.
func cappedConcat(concat lua.LValue) lua.LGFunction {
	return func(L *lua.LState) int {
		t := L.CheckTable(1)
		sep := L.OptString(2, "")
		i := L.OptInt(3, 1)
		j := L.OptInt(4, t.Len())
		size := 0
	count:
		for k := i; k <= j && size <= maxRep; k++ {
			switch v := t.RawGetInt(k).(type) {
			case lua.LString:
				size += len(v)
			case lua.LNumber:
				size += len(v.String())
			default:
				break count // concat itself names the bad item
			}
			if k < j {
				size += len(sep)
			}
		}
		if size > maxRep {
			L.RaiseError("table.concat: result longer than %d bytes", maxRep)
		}
		return forward(L, concat)
	}
}

// forward calls fn with the current arguments and returns its results.
func forward(L *lua.LState, fn lua.LValue) int {
	top := L.GetTop()
	L.Push(fn)
	for n := 1; n <= top; n++ {
		L.Push(L.Get(n))
	}
	L.Call(top, lua.MultRet)
	return L.GetTop() - top
}
