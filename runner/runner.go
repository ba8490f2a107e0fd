// Package runner is amx's one process runner, shared by classic commands and
// Lua routes: it starts Actions in their own process groups, signals the
// groups of resolved alerts, applies timeouts, logs output and exit status,
// and reports when each action is done with (Action.Ended), so that
// admission, which decides what may start, can count live processes. It
// knows nothing about configs, payloads or the delivery state.
package runner

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Action is one process to run: what to start and the rules it runs under.
type Action struct {
	// Name is the rule that asked for the action ("commands[0]", a route
	// name); it appears in logs.
	Name string
	Cmd  string
	Args []string
	// CommonEnv and then Env are added to amx's own environment, a later
	// variable replacing an earlier one of its name. CommonEnv is what many
	// actions share (a notification's classic variables), so that each
	// does not copy it; its names are distinct.
	CommonEnv []string
	Env       []string
	// Fingerprint binds the process to an alert: when that alert resolves,
	// the process group gets Signal. Empty binds to nothing.
	Fingerprint string
	// Signal is sent on resolve; zero means SIGKILL.
	Signal          syscall.Signal
	IgnoreResolved  bool
	NotifyOnFailure bool
	// Timeout ends the process group (SIGTERM, then SIGKILL after the
	// runner's grace); zero means never.
	Timeout time.Duration
	// Stdin is written to the process's standard input; empty means none.
	Stdin string
	// Payload is the notification as it arrived. With PayloadFile it is
	// written to a private temporary file, named to the process in
	// AMX_PAYLOAD_FILE and removed when the process ends.
	Payload     []byte
	PayloadFile bool
	// PayloadStdin writes Payload to the process's standard input, in
	// place of Stdin.
	PayloadStdin bool
	// KillAfter escalates a resolved signal the process group survives to
	// SIGKILL after this long; zero never does.
	KillAfter time.Duration
	// NoWait makes Run return as soon as the process has started: its end
	// is logged and counted, but not reported in the Result. WaitAtMost,
	// without NoWait, makes Run wait that long at most: a process that has
	// not ended by then is reported as started, as with NoWait.
	NoWait     bool
	WaitAtMost time.Duration
	// Started, when set, is called with the pid once the process has
	// started. Ended, when set, is called with the Result once the runner
	// is done with the action: its process has ended, or it did not start.
	// Admission counts live processes with them, the run history records
	// them.
	Started func(pid int)
	Ended   func(Result)
	// Output, when set, keeps the last bytes the process writes, on either
	// stream.
	Output *Tail
	// SeparateStderr gives standard error a pipe of its own, so that its
	// lines are logged with stream=stderr apart from stdout's. Without it
	// both streams share one pipe, their lines logged in the order they
	// were written: a pipe and a reader fewer per process.
	SeparateStderr bool
}

func ended(a *Action, res Result) {
	if a.Ended != nil {
		a.Ended(res)
	}
}

// Environ is the variables the action adds to amx's own environment.
func (a *Action) Environ() []string {
	return append(a.CommonEnv[:len(a.CommonEnv):len(a.CommonEnv)], a.Env...)
}

// Result is what became of one Action.
type Result struct {
	Action *Action
	Pid    int
	// Err is why the process could not start or did not succeed. A process
	// ended by its resolved signal did not fail: Err is nil and Resolved set.
	Err      error
	Resolved bool
	// ExitCode is the exit status, or -1 when the process did not start or
	// was ended by a signal; Signal is then that signal.
	ExitCode int
	Signal   syscall.Signal
	Duration time.Duration
	// Started is set for an action that started and was not waited for
	// (NoWait, or still running after WaitAtMost); the rest of the Result
	// is then unknown.
	Started bool
}

// Metrics are the collectors the runner updates. Nil fields are replaced by
// unregistered collectors, so tests can leave them out.
type Metrics struct {
	ProcessesCurrent prometheus.Gauge
	ProcessDuration  prometheus.Observer
	Signalled        *prometheus.CounterVec // label: result (ok, fail)
	Errors           *prometheus.CounterVec // label: stage (start, command)
}

// Options configure a Runner.
type Options struct {
	Logger  *slog.Logger
	Metrics Metrics
	// Grace is how long a timed-out process group has between SIGTERM and
	// SIGKILL, and how long amx waits for output held open by descendants
	// after a command exits. Default 5 s.
	Grace time.Duration
}

// ErrShuttingDown is the start error of actions run after Shutdown began.
var ErrShuttingDown = errors.New("amx is shutting down")

// Runner runs Actions. Its methods are safe for concurrent use.
type Runner struct {
	log   *slog.Logger
	m     Metrics
	grace time.Duration

	// devNull is the standard input of processes without one, opened
	// once; nil if it could not be (they then get an empty pipe).
	devNull *os.File
	// env is amx's own environment, which every process gets, and
	// envNames its names: amx does not change it while it runs.
	env      []string
	envNames map[string]struct{}

	mu     sync.Mutex
	closed bool
	// live holds every started process by the fingerprint it is bound to.
	live map[string]map[*proc]struct{}
	wg   sync.WaitGroup
}

// New returns a Runner.
func New(opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	m := &opts.Metrics
	if m.ProcessesCurrent == nil {
		m.ProcessesCurrent = prometheus.NewGauge(prometheus.GaugeOpts{Name: "unused"})
	}
	if m.ProcessDuration == nil {
		m.ProcessDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "unused"})
	}
	for _, v := range []**prometheus.CounterVec{&m.Signalled, &m.Errors} {
		if *v == nil {
			*v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unused"}, []string{"x"})
		}
	}
	devNull, _ := os.Open(os.DevNull)
	env := os.Environ()
	names := make(map[string]struct{}, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = struct{}{}
	}
	return &Runner{
		devNull:  devNull,
		env:      env,
		envNames: names,
		log:      opts.Logger,
		m:        opts.Metrics,
		grace:    opts.Grace,
		live:     make(map[string]map[*proc]struct{}),
	}
}

// Run starts every action and waits until all of them have ended. Results
// are in the order of actions.
func (r *Runner) Run(actions []Action) []Result {
	results := make([]Result, len(actions))
	procs := make([]*proc, len(actions))
	begin := time.Now()
	for i := range actions {
		procs[i], results[i] = r.start(&actions[i])
	}
	for i, p := range procs {
		switch {
		case p == nil:
		case p.action.NoWait:
			results[i] = p.startedResult()
		case p.action.WaitAtMost > 0:
			t := time.NewTimer(time.Until(begin.Add(p.action.WaitAtMost)))
			select {
			case <-p.done:
				results[i] = p.result
			case <-t.C:
				results[i] = p.startedResult()
			}
			t.Stop()
		default:
			<-p.done
			results[i] = p.result
		}
	}
	return results
}

// Resolve sends every live process bound to one of the fingerprints its
// action's resolved signal, to the whole process group, unless the action
// ignores resolves. A process still starting gets the signal as soon as it
// has started.
func (r *Runner) Resolve(fingerprints []string) {
	r.mu.Lock()
	var targets []*proc
	for _, fp := range fingerprints {
		if fp == "" {
			continue // an alert without fingerprint binds no process
		}
		for p := range r.live[fp] {
			targets = append(targets, p)
		}
	}
	r.mu.Unlock()

	for _, p := range targets {
		a := p.action
		log := newActionLog(r.log, a)
		if a.IgnoreResolved {
			log.Debug("alert resolved; process ignores resolves", "pid", p.getPid())
			continue
		}
		sig := resolvedSignal(a)
		if err := p.resolve(sig); err != nil {
			r.m.Signalled.WithLabelValues("fail").Inc()
			log.Error("signal process group", "signal", unix.SignalName(sig), "pid", p.getPid(), "err", err)
			continue
		}
		r.m.Signalled.WithLabelValues("ok").Inc()
		log.Info("signalled process group", "signal", unix.SignalName(sig), "pid", p.getPid())
		if a.KillAfter > 0 && sig != syscall.SIGKILL {
			p.killAfter(a.KillAfter, func() {
				log.Warn("still running after its resolved signal; killing the process group",
					"signal", unix.SignalName(sig), "kill_after", a.KillAfter, "pid", p.getPid())
			})
		}
	}
}

func resolvedSignal(a *Action) syscall.Signal {
	if a.Signal == 0 {
		return syscall.SIGKILL
	}
	return a.Signal
}

// Shutdown refuses new actions and lets running ones finish until ctx is
// done. Then it sends SIGTERM to the process groups still running, SIGKILL
// to those still running the runner's grace later, and waits for them to
// end. It returns ctx's error when processes had to be stopped.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()

	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	if !r.signalAll(syscall.SIGTERM, "shutdown grace over; terminating process group") {
		<-done // the last process ended as the grace ran out
		return nil
	}
	select {
	case <-done:
		return ctx.Err()
	case <-time.After(r.grace):
	}
	r.signalAll(syscall.SIGKILL, "still running after SIGTERM; killing process group")
	// SIGKILL cannot be caught; what remains is reaping and closing output.
	select {
	case <-done:
	case <-time.After(r.grace + time.Second):
		r.log.Error("processes still running after shutdown")
	}
	return ctx.Err()
}

// signalAll sends sig to the group of every live process, and reports
// whether there was any.
func (r *Runner) signalAll(sig syscall.Signal, why string) bool {
	r.mu.Lock()
	var left []*proc
	for _, set := range r.live {
		for p := range set {
			left = append(left, p)
		}
	}
	r.mu.Unlock()
	for _, p := range left {
		r.log.Warn(why, "name", p.action.Name, "cmd", p.action.Cmd, "pid", p.getPid())
		if err := p.signal(sig); err != nil {
			r.log.Error("signal process group", "signal", unix.SignalName(sig), "pid", p.getPid(), "err", err)
		}
	}
	return len(left) > 0
}

// track registers a process that is about to start.
func (r *Runner) track(p *proc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrShuttingDown
	}
	set := r.live[p.action.Fingerprint]
	if set == nil {
		set = make(map[*proc]struct{})
		r.live[p.action.Fingerprint] = set
	}
	set[p] = struct{}{}
	r.wg.Add(1)
	return nil
}

// untrack forgets a process that has ended or never started, and reports
// what became of it.
func (r *Runner) untrack(p *proc, res Result) {
	a := p.action
	r.mu.Lock()
	set := r.live[a.Fingerprint]
	delete(set, p)
	if len(set) == 0 {
		delete(r.live, a.Fingerprint)
	}
	r.mu.Unlock()
	ended(a, res)
	r.wg.Done()
}
