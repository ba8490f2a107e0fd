package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
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
	log := r.log.With("name", a.Name, "cmd", a.Cmd, "fingerprint", a.Fingerprint)
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

// launch is one process being started: the command, what it needs while it
// runs and what is left to clean up after.
type launch struct {
	cmd     *exec.Cmd
	ctx     context.Context // done at the timeout
	cancel  context.CancelFunc
	payload string // the payload file, removed at the end
	// out are the read ends of the process's output pipes, one for both
	// streams or two; writeEnds are the other ends, which only the child
	// keeps once it has started.
	out       []*outPipe
	writeEnds []*os.File
	begin     time.Time
}

// end releases what the launch holds besides the process.
func (l *launch) end() {
	l.cancel()
	l.closeWriteEnds()
	for _, o := range l.out {
		o.r.Close()
	}
	if l.payload != "" {
		os.Remove(l.payload)
	}
}

func (l *launch) closeWriteEnds() {
	for _, w := range l.writeEnds {
		w.Close()
	}
	l.writeEnds = nil
}

// prepare builds the command of an action: its environment and payload
// file, its own process group, its timeout, input and output.
func (r *Runner) prepare(p *proc, log *slog.Logger) (*launch, error) {
	a := p.action
	l := &launch{ctx: context.Background(), cancel: func() {}}
	if a.Timeout > 0 {
		l.ctx, l.cancel = context.WithTimeout(l.ctx, a.Timeout)
	}
	cmd := exec.CommandContext(l.ctx, a.Cmd, a.Args...)
	base := os.Environ()
	cmd.Env = make([]string, 0, len(base)+len(a.CommonEnv)+len(a.Env)+1)
	cmd.Env = append(append(append(cmd.Env, base...), a.CommonEnv...), a.Env...)
	if a.PayloadFile {
		var err error
		if l.payload, err = writePayload(a.Payload); err != nil {
			l.cancel()
			return nil, fmt.Errorf("payload file: %w", err)
		}
		cmd.Env = append(cmd.Env, "AMX_PAYLOAD_FILE="+l.payload)
	}
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error {
		// Timed out: ask the whole group to stop, then insist.
		log.Warn("timed out; terminating process group", "timeout", a.Timeout, "pid", p.getPid())
		time.AfterFunc(r.grace, func() { _ = p.signal(syscall.SIGKILL) })
		return p.signal(syscall.SIGTERM)
	}
	cmd.WaitDelay = r.grace
	switch {
	case a.PayloadStdin:
		cmd.Stdin = bytes.NewReader(a.Payload)
	case a.Stdin != "":
		cmd.Stdin = strings.NewReader(a.Stdin)
	case r.devNull != nil:
		// An *os.File is handed to the child as it is: os/exec would
		// open /dev/null anew for every process.
		cmd.Stdin = r.devNull
	}
	// The output pipes are amx's own: handed to the child as files, they
	// spare os/exec's copying goroutine and its buffer, and the process's
	// wait reads them.
	streams := []string{""}
	if a.SeparateStderr {
		streams = []string{"stdout", "stderr"}
	}
	for _, stream := range streams {
		rd, w, err := outputPipe()
		if err != nil {
			l.end()
			return nil, fmt.Errorf("output pipe: %w", err)
		}
		l.writeEnds = append(l.writeEnds, w)
		l.out = append(l.out, &outPipe{r: rd, log: &lineLogger{log: log, stream: stream, pid: p.getPid, tail: a.Output}})
	}
	cmd.Stdout, cmd.Stderr = l.writeEnds[0], l.writeEnds[len(l.writeEnds)-1]
	l.cmd = cmd
	return l, nil
}

// launch starts the prepared command.
func (r *Runner) launch(p *proc, l *launch, log *slog.Logger) error {
	l.begin = time.Now()
	err := l.cmd.Start()
	l.closeWriteEnds()
	if err != nil {
		l.end()
		return fmt.Errorf("start: %w", err)
	}
	pid := l.cmd.Process.Pid
	p.started(pid)
	r.m.ProcessesCurrent.Inc()
	log.Info("started", "pid", pid, "args", p.action.Args)
	if p.action.Started != nil {
		p.action.Started(pid)
	}
	return nil
}

// wait waits for a started process to end, and sets its result.
func (r *Runner) wait(p *proc, l *launch, log *slog.Logger) {
	defer close(p.done)
	defer l.end()
	a, cmd, pid := p.action, l.cmd, l.cmd.Process.Pid
	held := r.drain(p, l)
	err := cmd.Wait()
	p.markExited()
	if held {
		// A process the command left running still holds its output,
		// which amx stops reading rather than wait for.
		log.Warn("output still held open by a process the command left running; no longer read", "pid", pid)
	}
	took := time.Since(l.begin)
	r.m.ProcessesCurrent.Dec()
	r.m.ProcessDuration.Observe(took.Seconds())

	res := Result{Action: a, Pid: pid, ExitCode: cmd.ProcessState.ExitCode(), Duration: took}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal()
	}
	attrs := []any{"pid", pid, "exit_code", res.ExitCode, "duration", took.Round(time.Millisecond)}
	switch {
	case p.wasResolved():
		// Stopped on purpose: reporting it would make Alertmanager
		// retry the firing notification and start it again.
		res.Resolved = true
		log.Info("ended after its alert resolved", append(attrs, "status", cmd.ProcessState.String())...)
	case err != nil:
		if errors.Is(l.ctx.Err(), context.DeadlineExceeded) {
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
	pid := l.cmd.Process.Pid
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
