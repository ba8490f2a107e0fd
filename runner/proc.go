package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one process started for an Action.
type proc struct {
	action *Action
	done   chan struct{} // closed when result is set
	result Result

	mu       sync.Mutex
	pid      int            // 0 until started
	pending  syscall.Signal // a signal that arrived before the start
	exited   bool           // the leader exited: its pid may be reused once reaped
	resolved bool           // its alert resolved and it was signalled for it
	kill     *time.Timer    // escalates a resolved signal to SIGKILL
}

// signal sends sig to the process group. A process that has not started yet
// gets it right after the start; one that has exited is left alone. ESRCH
// means the group is already gone, which is what was asked.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.exited:
		return nil
	case p.pid == 0:
		p.pending = sig
		return nil
	}
	return killGroup(p.pid, sig)
}

func killGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// resolve sends the resolved signal and remembers that the process was
// asked to stop.
func (p *proc) resolve(sig syscall.Signal) error {
	p.mu.Lock()
	p.resolved = !p.exited
	p.mu.Unlock()
	return p.signal(sig)
}

func (p *proc) wasResolved() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resolved
}

// startedResult is the Result of a process that was not waited for.
func (p *proc) startedResult() Result {
	return Result{Action: p.action, Pid: p.getPid(), ExitCode: -1, Started: true}
}

func (p *proc) getPid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *proc) started(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pid = pid
	if p.pending != 0 {
		_ = killGroup(pid, p.pending)
	}
}

func (p *proc) markExited() {
	p.mu.Lock()
	p.exited = true
	if p.kill != nil {
		p.kill.Stop()
	}
	p.mu.Unlock()
}

// killAfter sends SIGKILL to the group after d unless the process has
// exited by then; warn is called first. A later resolve keeps the first
// deadline.
func (p *proc) killAfter(d time.Duration, warn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.kill != nil {
		return
	}
	p.kill = time.AfterFunc(d, func() {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		if !exited {
			warn()
			_ = p.signal(syscall.SIGKILL)
		}
	})
}

// writePayload writes a notification to a new temporary file, readable by
// amx's user only, and returns its name.
func writePayload(payload []byte) (string, error) {
	f, err := os.CreateTemp("", "amx-payload-*.json")
	if err != nil {
		return "", err
	}
	_, err = f.Write(payload)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// start launches an action. It returns the process, or nil and the final
// Result when the action cannot start.
func (r *Runner) start(a *Action) (*proc, Result) {
	p := &proc{action: a, done: make(chan struct{})}
	log := newActionLog(r.log, a)
	if err := r.track(p); err != nil {
		res := Result{Action: a, Err: err, ExitCode: -1}
		ended(a, res)
		r.m.Errors.WithLabelValues("start").Inc()
		log.Error("not started", "err", err)
		return nil, res
	}
	l, err := r.prepare(p, log)
	if err == nil {
		err = r.launch(p, l, log)
	}
	if err != nil {
		res := Result{Action: a, Err: err, ExitCode: -1}
		r.untrack(p, res)
		r.m.Errors.WithLabelValues("start").Inc()
		log.Error("not started", "err", err)
		return nil, res
	}
	go r.wait(p, l, log)
	return p, Result{}
}

// launch is one process being started: what to start, what it needs while
// it runs and what is left to clean up after.
type launch struct {
	path    string
	argv    []string
	env     []string
	files   []*os.File // the child's standard input, output and error
	pid     int
	payload string // the payload file, removed at the end
	// input is written to the process's standard input through inputPipe,
	// when it has any.
	input     string
	inputPipe *os.File
	// childFiles are the ends of pipes that only the child keeps once it
	// has started; out are the read ends of its output pipes, one for both
	// streams or two.
	childFiles []*os.File
	out        []*outPipe
	timeout    *time.Timer
	timedOut   atomic.Bool
	begin      time.Time
}

// end releases what the launch holds besides the process.
func (l *launch) end() {
	if l.timeout != nil {
		l.timeout.Stop()
	}
	l.closeChildFiles()
	if l.inputPipe != nil {
		// Ends a write that the process's descendants never read.
		l.inputPipe.Close()
	}
	for _, o := range l.out {
		o.r.Close()
	}
	if l.payload != "" {
		os.Remove(l.payload)
	}
}

func (l *launch) closeChildFiles() {
	for _, f := range l.childFiles {
		f.Close()
	}
	l.childFiles = nil
}

// prepare builds the command of an action: its path, environment and
// payload file, its own process group, its input and output.
func (r *Runner) prepare(p *proc, log *actionLog) (*launch, error) {
	a := p.action
	l := &launch{path: a.Cmd, argv: append([]string{a.Cmd}, a.Args...)}
	if filepath.Base(a.Cmd) == a.Cmd {
		// A bare name is looked up in PATH, as os/exec does.
		path, err := exec.LookPath(a.Cmd)
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		l.path = path
	}
	var extra []string
	if a.PayloadFile {
		var err error
		if l.payload, err = writePayload(a.Payload); err != nil {
			return nil, fmt.Errorf("payload file: %w", err)
		}
		extra = []string{"AMX_PAYLOAD_FILE=" + l.payload}
	}
	l.env = r.environ(a, extra)

	stdin := r.devNull
	switch {
	case a.PayloadStdin:
		l.input = string(a.Payload)
	case a.Stdin != "":
		l.input = a.Stdin
	}
	if l.input != "" || stdin == nil {
		rd, w, err := os.Pipe()
		if err != nil {
			l.end()
			return nil, fmt.Errorf("input pipe: %w", err)
		}
		l.childFiles = append(l.childFiles, rd)
		l.inputPipe, stdin = w, rd
	}
	// The output pipes are amx's own: handed to the child as files, the
	// wait reads them, without os/exec's copying goroutine and buffer.
	streams := []string{""}
	if a.SeparateStderr {
		streams = []string{"stdout", "stderr"}
	}
	files := []*os.File{stdin}
	for _, stream := range streams {
		rd, w, err := outputPipe()
		if err != nil {
			l.end()
			return nil, fmt.Errorf("output pipe: %w", err)
		}
		l.childFiles = append(l.childFiles, w)
		l.out = append(l.out, &outPipe{r: rd, log: &lineLogger{log: log, stream: stream, pid: p.getPid, tail: a.Output}})
		files = append(files, w)
	}
	if len(streams) == 1 {
		files = append(files, files[1]) // stderr is stdout
	}
	l.files = files
	return l, nil
}

// environ is amx's environment with the action's variables added, a later
// variable of a name replacing an earlier one, as os/exec does. The names
// of CommonEnv are distinct; the search for repeats is skipped when no
// variable added can repeat another.
func (r *Runner) environ(a *Action, extra []string) []string {
	env := make([]string, 0, len(r.env)+len(a.CommonEnv)+len(a.Env)+len(extra))
	env = append(append(append(append(env, r.env...), a.CommonEnv...), a.Env...), extra...)
	if len(a.Env) == 0 && !r.inEnviron(a.CommonEnv) && !r.inEnviron(extra) {
		return env
	}
	return dedupEnv(env)
}

// inEnviron reports whether a variable of vars has a name of amx's own
// environment.
func (r *Runner) inEnviron(vars []string) bool {
	for _, kv := range vars {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := r.envNames[name]; ok {
			return true
		}
	}
	return false
}

// dedupEnv keeps the last variable of each name, where it is.
func dedupEnv(env []string) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, len(env))
	i := len(out)
	for _, kv := range slices.Backward(env) {
		name, _, _ := strings.Cut(kv, "=")
		if !seen[name] {
			seen[name] = true
			i--
			out[i] = kv
		}
	}
	return out[i:]
}

// launch starts the prepared command. It forks and execs through the
// syscall package rather than os.StartProcess: an os.Process comes with a
// pidfd opened at the fork, a finalizer and a wait that closes the pidfd
// again, all per process and unused here, where the group is signalled by
// its id and the exit is watched by waitExited. Until reap collects the
// process, its pid cannot be reused.
func (r *Runner) launch(p *proc, l *launch, log *actionLog) error {
	a := p.action
	fds := make([]uintptr, len(l.files))
	for i, f := range l.files {
		fds[i] = f.Fd() // in blocking mode, as a child expects
	}
	l.begin = time.Now()
	pid, _, err := syscall.StartProcess(l.path, l.argv, &syscall.ProcAttr{Env: l.env, Files: fds, Sys: sysProcAttr()})
	runtime.KeepAlive(l.files)
	l.closeChildFiles()
	if err != nil {
		l.end()
		return fmt.Errorf("start: %w", &os.PathError{Op: "fork/exec", Path: l.path, Err: err})
	}
	l.pid = pid
	p.started(pid)
	if l.input != "" {
		go func() {
			// A process that does not read its input ends the write
			// (EPIPE), as does the end of the launch.
			io.WriteString(l.inputPipe, l.input)
			l.inputPipe.Close()
		}()
	} else if l.inputPipe != nil {
		l.inputPipe.Close() // no input: end of file at once
		l.inputPipe = nil
	}
	if a.Timeout > 0 {
		l.timeout = time.AfterFunc(a.Timeout, func() {
			// Timed out: ask the whole group to stop, then insist.
			l.timedOut.Store(true)
			log.Warn("timed out; terminating process group", "timeout", a.Timeout, "pid", pid)
			time.AfterFunc(r.grace, func() { _ = p.signal(syscall.SIGKILL) })
			_ = p.signal(syscall.SIGTERM)
		})
	}
	r.m.ProcessesCurrent.Inc()
	log.Info("started", "pid", pid, "args", a.Args)
	if a.Started != nil {
		a.Started(pid)
	}
	return nil
}

// wait waits for a started process to end, and sets its result.
func (r *Runner) wait(p *proc, l *launch, log *actionLog) {
	defer close(p.done)
	defer l.end()
	a, pid := p.action, l.pid
	held := r.drain(p, l)
	status, err := reap(pid)
	p.markExited()
	if held {
		// A process the command left running still holds its output,
		// which amx stops reading rather than wait for.
		log.Warn("output still held open by a process the command left running; no longer read", "pid", pid)
	}
	took := time.Since(l.begin)
	r.m.ProcessesCurrent.Dec()
	r.m.ProcessDuration.Observe(took.Seconds())

	res := Result{Action: a, Pid: pid, ExitCode: -1, Duration: took}
	state := "<nil>"
	if err == nil {
		state = statusString(status)
		res.ExitCode = status.ExitStatus()
		if status.Signaled() {
			res.Signal = status.Signal()
		}
		if res.ExitCode != 0 {
			err = exitError(status)
		}
	}
	attrs := []any{"pid", pid, "exit_code", res.ExitCode, "duration", took.Round(time.Millisecond)}
	switch {
	case p.wasResolved():
		// Stopped on purpose: reporting it would make Alertmanager
		// retry the firing notification and start it again.
		res.Resolved = true
		log.Info("ended after its alert resolved", append(attrs, "status", state)...)
	case err != nil:
		if l.timedOut.Load() {
			err = fmt.Errorf("timed out after %s", a.Timeout)
		}
		r.m.Errors.WithLabelValues("command").Inc()
		res.Err = fmt.Errorf("%s: %w", a.Cmd, err)
		log.Warn("failed", append(attrs, "err", err)...)
	default:
		log.Info("finished", attrs...)
	}
	p.result = res
	r.untrack(p, res)
}

// reap waits for the process to end and collects it, after which its pid
// may be reused. The wait blocks a thread only for a process still running
// where waitExited cannot wait without reaping; on Linux drain has waited
// for the exit already.
func reap(pid int) (syscall.WaitStatus, error) {
	var status syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &status, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return status, os.NewSyscallError("wait4", err)
		}
	}
}

// exitError is the error of a process that did not exit with status 0.
type exitError syscall.WaitStatus

func (e exitError) Error() string { return statusString(syscall.WaitStatus(e)) }

// statusString says how a process ended, in the words of os.ProcessState.
func statusString(status syscall.WaitStatus) string {
	var s string
	switch {
	case status.Exited():
		s = "exit status " + strconv.Itoa(status.ExitStatus())
	case status.Signaled():
		s = "signal: " + status.Signal().String()
	}
	if status.CoreDump() {
		s += " (core dumped)"
	}
	return s
}

// watchAfter is how long a process runs before a watcher waits for its
// exit beside the reading of its output.
const watchAfter = 100 * time.Millisecond

// drain logs the process's output until every holder has closed it, which
// is most often the process exiting, and then waits for the exit without
// reaping. A process that runs longer than watchAfter gets a watcher that
// notices its exit, after which its output is read for the runner's grace
// at most: something it left running may hold it open for ever. drain
// reports whether that cut the output short.
func (r *Runner) drain(p *proc, l *launch) (held bool) {
	pid := l.pid
	watched := make(chan struct{})
	watch := time.AfterFunc(watchAfter, func() {
		defer close(watched)
		if !waitExited(pid) {
			return // cannot know here: the output is read to its end
		}
		p.markExited()
		deadline := time.Now().Add(r.grace)
		for _, o := range l.out {
			o.r.SetReadDeadline(deadline)
		}
	})
	held = drainAll(l.out)
	if watch.Stop() {
		// The output closed before the watcher began: most often the
		// process has exited.
		if waitExited(pid) {
			p.markExited()
		}
	} else {
		<-watched
	}
	for _, o := range l.out {
		o.log.flush()
	}
	return held
}
