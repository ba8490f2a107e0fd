package luaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Script is a compiled rule. Its prototype is immutable, so one Script serves
// every state and goroutine.
type Script struct {
	name  string
	proto *lua.FunctionProto
	// The label and annotation names the script reads by name, set on
	// the alert's tables before it runs (see prefill).
	labelKeys, annotationKeys []string
	// guards are the script's leading statements that Run decides in Go
	// (see guard.go).
	guards []guard
	// lines are the source, for error messages (see explainIndex).
	lines []string
}

// Name is the script's name as errors show it.
func (s *Script) Name() string { return s.name }

// Compile parses and compiles a script once. name appears in errors, which
// read "name:line: message".
func Compile(name, src string) (*Script, error) {
	return compile(name, src, true)
}

// compile is Compile, with calls rewritten (see rewrite.go) or, for tests
// that compare, not.
func compile(name, src string, fast bool) (*Script, error) {
	if err := checkSource(name, src); err != nil {
		return nil, err
	}
	chunk, err := parse.Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, syntaxError(name, strings.Count(strings.TrimRight(src, "\n"), "\n")+1, err)
	}
	var proto *lua.FunctionProto
	var labelKeys, annotationKeys []string
	var gs []guard
	if fast {
		gs = guards(chunk)
		labelKeys, annotationKeys = readKeys(chunk)
		rewrite(chunk)
		boundConcat(chunk)
		proto, err = lua.Compile(chunk, name)
		if err != nil {
			// A rewritten exec{} takes two registers a field where the
			// table took none for a named one: a function close to
			// gopher-lua's 200 registers compiles only as written.
			chunk, _ = parse.Parse(strings.NewReader(src), name)
		}
	}
	if proto == nil {
		boundConcat(chunk)
		proto, err = lua.Compile(chunk, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// A main chunk is a vararg function, for which gopher-lua builds the
	// Lua 5.0 `arg` table on every call. Rules get no arguments; skip it.
	proto.IsVarArg &^= lua.VarArgNeedsArg
	return &Script{name: name, proto: proto, labelKeys: labelKeys, annotationKeys: annotationKeys, guards: gs,
		lines: strings.Split(src, "\n")}, nil
}

// syntaxError renders gopher-lua's parse error ("name line:3(column:5)
// near 'x': syntax error") as name:3: near 'x': syntax error.
func syntaxError(name string, lines int, err error) error {
	var perr *parse.Error
	if errors.As(err, &perr) {
		if perr.Pos.Line <= 0 { // the parser ran out of script
			return fmt.Errorf("%s:%d: %s at the end of the script", name, lines, perr.Message)
		}
		return fmt.Errorf("%s:%d: %s near '%s'", name, perr.Pos.Line, perr.Message, perr.Token)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Alert is one alert as a script sees it; times are Unix seconds.
type Alert struct {
	Status       string
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     int64
	EndsAt       int64
	GeneratorURL string
	Fingerprint  string
}

// Notification is the whole notification as a script sees it.
type Notification struct {
	Receiver          string
	Status            string
	GroupKey          string
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	ExternalURL       string
	TruncatedAlerts   int
	Alerts            []Alert
	// State is what state.get reads; nil reads nothing.
	State StateReader
}

// Exec is one exec() call: a command and the options the script gave. Unset
// options are nil and default to the route's.
type Exec struct {
	Cmd             string
	Args            []string
	Max             *int
	ResolvedSignal  *int // a signal number
	IgnoreResolved  *bool
	NotifyOnFailure *bool
	Timeout         *time.Duration
	Stdin           *string
	// Wait is wait = true or false, WaitAtMost wait = "8s".
	Wait       *bool
	WaitAtMost *time.Duration
	// Key is what max and cooldown count per, in place of the route's by
	// labels or the alert's fingerprint.
	Key      *string
	Cooldown *time.Duration
}

// Result is what one invocation asked for. When Skipped, nothing it exec'd
// may run.
type Result struct {
	Execs      []Exec
	Env        []string // NAME=value from env(), in call order
	Skipped    bool
	SkipReason string
	// Writes are the state changes asked for, in call order.
	Writes []StateWrite
}

// reset empties r for the next invocation. Run returns a copy of r, so the
// slices are dropped, not reused.
func (r *Result) reset() {
	if r.Execs != nil {
		r.Execs = nil
	}
	if r.Env != nil {
		r.Env = nil
	}
	if r.Writes != nil {
		r.Writes = nil
	}
	r.Skipped = false
	if r.SkipReason != "" {
		r.SkipReason = ""
	}
}

// VM runs scripts in a pool of sandboxed states.
type VM struct {
	log  *slog.Logger
	pool sync.Pool
	dog  watchdog
}

// DefaultMemoryLimit is the Go heap size at which running scripts are
// stopped, unless NewVM is given another.
const DefaultMemoryLimit = 512 << 20

// NewVM returns a VM whose invocations each get timeout of run time, and are
// stopped when the process's Go heap grows past memoryLimit bytes while they
// run (zero means DefaultMemoryLimit).
func NewVM(timeout time.Duration, memoryLimit uint64, log *slog.Logger) *VM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if memoryLimit == 0 {
		memoryLimit = DefaultMemoryLimit
	}
	vm := &VM{log: log, dog: watchdog{timeout: timeout, limit: memoryLimit}}
	vm.pool.New = func() any { return newState() }
	return vm
}

// invocation is the state of one script run, read by the host functions.
type invocation struct {
	route string
	msg   *Notification
	alert *Alert
	res   Result
	log   *slog.Logger

	// For the watchdog: the caller's context, when it first saw the run
	// (zero before), and the state's stopCtx. stopped is the Kind the
	// watchdog stopped the run for; it is written under the watchdog's
	// lock and read after leave.
	ctx     context.Context
	started time.Time
	stopCtx *stopCtx
	stopped string
	// prev and next link the watchdog's list of running invocations.
	prev, next *invocation
}

func (inv *invocation) stop(kind string) {
	inv.stopped = kind
	inv.stopCtx.stop()
}

// Run runs a script for one alert of a notification (index into n.Alerts).
// Errors are one line naming script:line; a run that errs asks for nothing.
// What the script's guards decide (guard.go) is answered without a state.
func (vm *VM) Run(ctx context.Context, s *Script, route string, n *Notification, index int) (Result, error) {
	if len(s.guards) > 0 && ctx.Err() == nil {
		if res, ok := decide(s.guards, &n.Alerts[index]); ok {
			return res, nil
		}
	}
	st := vm.pool.Get().(*state)
	res, err := vm.runOn(ctx, st, s, route, n, index)
	if err != nil || st.ctx.Err() != nil {
		// A state that was stopped, or unwound by an error, is not
		// trusted with another script.
		st.L.Close()
		return res, err
	}
	vm.pool.Put(st)
	return res, nil
}

func (vm *VM) runOn(ctx context.Context, st *state, s *Script, route string, n *Notification, index int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, &Error{Msg: fmt.Sprintf("%s: not run: %v", s.name, err), Kind: KindCanceled}
	}
	// Field by field, and only what changed: while a collection runs,
	// copying a whole struct of pointers costs the collector's bulk
	// barrier, which was a tenth of a short rule's time.
	inv := &st.inv
	inv.route, inv.msg, inv.alert, inv.ctx, inv.stopped = route, n, &n.Alerts[index], ctx, ""
	if inv.log != vm.log {
		inv.log = vm.log
	}
	inv.res.reset()
	fn := st.function(s)
	if env := st.begin(s); fn.Env != env {
		fn.Env = env
	}
	vm.dog.enter(inv)
	st.L.Push(fn)
	err := st.call()
	vm.dog.leave(inv)
	st.end()
	switch {
	case inv.stopped != "" && err != nil:
		err = vm.stopError(s, inv, err)
	case err != nil && !inv.res.Skipped:
		err = scriptError(s, err)
	default:
		err = nil
	}
	inv.msg, inv.alert, inv.ctx = nil, nil, nil
	if err != nil {
		return Result{}, err
	}
	return inv.res, nil
}

// call runs the function on top of the state's stack. A panic that escapes
// gopher-lua's PCall (its registry overflowing while PCall handles another
// error, say) becomes the run's error, so that the watchdog lets go of the
// run and the other routes still run; Run then closes the state.
func (st *state) call() (err error) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case error: // gopher-lua's *ApiError: errorText takes its message
			err = r
		default:
			err = fmt.Errorf("%v", r)
		}
	}()
	return st.L.PCall(0, 0, st.handler)
}

// Kinds of script failure, as am_executor_lua_errors_total labels them.
const (
	KindError   = "error"   // the script raised an error or misused a host function
	KindTimeout = "timeout" // it ran past its deadline
	KindMemory  = "memory"  // the memory limit stopped it
	// KindCanceled: its caller gave up (the client hung up, the server is
	// shutting down) before it finished.
	KindCanceled = "canceled"
)

// Error is a script that failed. Msg is one line naming script:line.
type Error struct {
	Msg  string
	Kind string
}

func (e *Error) Error() string { return e.Msg }

// stopError explains why the watchdog stopped a script; gopher-lua's
// message starts with where it was stopped.
func (vm *VM) stopError(s *Script, inv *invocation, err error) error {
	where, _, _ := strings.Cut(errorText(err), " ")
	if !strings.HasPrefix(where, s.name+":") {
		where = s.name + ":"
	}
	switch inv.stopped {
	case KindMemory:
		return &Error{Msg: fmt.Sprintf("%s stopped: memory limit of %d MiB reached", where, vm.dog.limit>>20), Kind: KindMemory}
	case KindTimeout:
		return &Error{Msg: fmt.Sprintf("%s timed out after %s", where, vm.dog.timeout), Kind: KindTimeout}
	}
	return &Error{Msg: fmt.Sprintf("%s stopped: %v", where, inv.ctx.Err()), Kind: KindCanceled}
}

func scriptError(s *Script, err error) error {
	msg := errorText(err)
	if !strings.HasPrefix(msg, s.name+":") {
		msg = s.name + ": " + msg
	}
	return &Error{Msg: explainIndex(s.lines, msg), Kind: KindError}
}

// errorText is the message of a script error, without gopher-lua's
// traceback.
func errorText(err error) string {
	if aerr, ok := errors.AsType[*lua.ApiError](err); ok {
		return aerr.Object.String()
	}
	return err.Error()
}
