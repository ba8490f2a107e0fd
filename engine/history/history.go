// Package history keeps what one amx did: the processes it runs now, the
// last runs (admitted actions and admission refusals) and counters per
// command and route since start, for the status page, its API and amx ps
// and amx runs. It is local to its amx process and bounded: the last Size
// runs, each with the last OutputSize bytes of its output, and no more than
// OutputBudget bytes of output in all.
package history

import (
	"cmp"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/runner"
)

// Bounds of a History.
const (
	Size         = 1000     // runs kept
	OutputSize   = 64 << 10 // bytes of output kept per run
	OutputBudget = 16 << 20 // bytes of output kept in all; the oldest runs lose theirs first
)

// Outcomes of a run.
const (
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"   // did not start, exited non-zero or timed out
	Resolved  = "resolved" // ended by its alert's resolved signal
	Skipped   = "skipped"  // refused at admission: Reason says why
	Unknown   = "unknown"  // amx stopped while it ran, and did not see it end
)

// Run is one admitted action or admission refusal. Its JSON field names are
// the API's, and stable.
type Run struct {
	ID          uint64            `json:"id"`
	Start       time.Time         `json:"start"`
	Action      string            `json:"action"`
	Cmd         string            `json:"cmd,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Key         string            `json:"key,omitempty"`
	Max         int               `json:"max,omitempty"`
	Alertname   string            `json:"alertname,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	GroupKey    string            `json:"group_key,omitempty"`
	Outcome     string            `json:"outcome"`
	// Reason is why a run was skipped; Count how many refusals of the
	// same action for the same reason one notification had (the alert
	// shown is the first's).
	Reason string `json:"reason,omitempty"`
	Count  int    `json:"count,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	// ExitCode is set once a started process has exited by itself; Signal
	// names the signal that ended it otherwise.
	ExitCode *int    `json:"exit_code,omitempty"`
	Signal   string  `json:"signal,omitempty"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_seconds,omitempty"`
	// Env are the names of the variables amx gave the process; their
	// values are not kept.
	Env []string `json:"env,omitempty"`
	// Output is the end of what the process wrote (both streams), only in
	// a single run's detail; OutputCut says earlier output was dropped.
	Output    string `json:"output,omitempty"`
	OutputCut bool   `json:"output_cut,omitempty"`
}

// LabelText is the run's alert labels but alertname (shown apart), sorted,
// as Prometheus writes them: instance="db1", job="node".
func (r Run) LabelText() string {
	names := make([]string, 0, len(r.Labels))
	for n := range r.Labels {
		if n != "alertname" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n + "=" + strconv.Quote(r.Labels[n]))
	}
	return b.String()
}

// Process is a run whose process is running.
type Process struct {
	Run
	Elapsed float64 `json:"elapsed_seconds"`
	// Live counts the processes of the same action and key running here,
	// to compare with Max.
	Live int `json:"live"`
}

// ProcessList is the answer of GET /api/v1/processes: Instance names the
// amx (host and address) whose processes these are.
type ProcessList struct {
	Instance  string    `json:"instance"`
	Processes []Process `json:"processes"`
}

// RunList is the answer of GET /api/v1/runs.
type RunList struct {
	Instance string `json:"instance"`
	Runs     []Run  `json:"runs"`
}

// Filter selects runs; empty fields select all.
type Filter struct {
	Action, Alertname, Outcome string
}

func (f Filter) match(r *Run) bool {
	return (f.Action == "" || f.Action == r.Action) &&
		(f.Alertname == "" || f.Alertname == r.Alertname) &&
		(f.Outcome == "" || f.Outcome == r.Outcome)
}

// entry is a kept run, with the tail of its output while it runs.
type entry struct {
	run  Run
	tail *runner.Tail
}

// History is one amx's record of its runs. Its methods are safe for
// concurrent use.
type History struct {
	store state.Records // nil: memory only
	now   func() time.Time

	mu     sync.Mutex
	next   uint64
	ring   []*entry // the last Size runs; oldest at head once full
	head   int
	live   map[uint64]*entry
	output int // bytes of output held by finished runs
	// dirty are the runs changed since the last save, gone the ones
	// dropped from the ring.
	dirty map[uint64]*entry
	gone  []uint64

	tally tally
	names nameCache
}

// New returns an empty History kept in memory.
func New() *History {
	return &History{now: time.Now, next: 1, live: make(map[uint64]*entry), dirty: make(map[uint64]*entry)}
}

// Open returns a History kept in store as well, with the runs store holds.
// Runs that were running when the last amx stopped are Unknown.
func Open(store state.Records) (*History, error) {
	h := New()
	h.store = store
	var runs []*entry
	err := store.ForEach(func(n uint64, v []byte) error {
		e := &entry{}
		if err := json.Unmarshal(v, &e.run); err != nil || e.run.ID != n {
			h.gone = append(h.gone, n) // what cannot be read is dropped, not fatal
			return nil
		}
		if e.run.Outcome == Running {
			e.run.Outcome, e.run.Error = Unknown, "amx stopped while it ran"
			h.dirty[n] = e
		}
		runs = append(runs, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	if len(runs) > Size {
		for _, e := range runs[:len(runs)-Size] {
			h.gone = append(h.gone, e.run.ID)
			delete(h.dirty, e.run.ID)
		}
		runs = runs[len(runs)-Size:]
	}
	for _, e := range runs {
		h.push(e)
		h.next = max(h.next, e.run.ID+1)
	}
	h.trimOutput()
	return h, nil
}

// Persistent reports whether the history survives a restart.
func (h *History) Persistent() bool { return h.store != nil }

// push adds an entry to the ring; the caller holds mu.
func (h *History) push(e *entry) {
	if len(h.ring) < Size {
		h.ring = append(h.ring, e)
		h.output += len(e.run.Output)
		return
	}
	old := h.ring[h.head]
	h.output -= len(old.run.Output)
	delete(h.dirty, old.run.ID)
	if h.store != nil {
		h.gone = append(h.gone, old.run.ID)
	}
	h.ring[h.head] = e
	h.head = (h.head + 1) % Size
	h.output += len(e.run.Output)
}

// trimOutput drops the output of the oldest runs until what is kept is
// within OutputBudget; the caller holds mu.
func (h *History) trimOutput() {
	for i := 0; h.output > OutputBudget && i < len(h.ring); i++ {
		e := h.ring[(h.head+i)%len(h.ring)]
		if e.run.Output == "" {
			continue
		}
		h.output -= len(e.run.Output)
		e.run.Output, e.run.OutputCut = "", true
		h.changed(e)
	}
}

func (h *History) changed(e *entry) {
	if h.store != nil {
		h.dirty[e.run.ID] = e
	}
}

// Add records an admitted action about to start and returns its ID, and
// the Tail its output is to be kept in.
func (h *History) Add(r Run) (uint64, *runner.Tail) {
	r.own()
	e := &entry{run: r, tail: runner.NewTail(OutputSize)}
	e.run.Outcome = Running
	h.mu.Lock()
	defer h.mu.Unlock()
	e.run.ID = h.next
	h.next++
	h.live[e.run.ID] = e
	h.push(e)
	h.changed(e)
	return e.run.ID, e.tail
}

// Skip records admission refusals, and counts them.
func (h *History) Skip(runs []Run) {
	if len(runs) == 0 {
		return
	}
	entries := make([]*entry, len(runs))
	for i, r := range runs {
		r.own()
		r.Outcome = Skipped
		entries[i] = &entry{run: r}
	}
	h.mu.Lock()
	for _, e := range entries {
		e.run.ID = h.next
		h.next++
		h.push(e)
		h.changed(e)
	}
	h.mu.Unlock()
	for _, r := range runs {
		h.tally.count(r.Action, func(c *Counts) { c.Skipped[r.Reason] += int64(r.Count) })
	}
}

// own copies the strings of a run given to the history: they may share
// the memory of a notification's body (see engine.Decode), which a run
// kept for hours must not hold.
func (r *Run) own() {
	for _, s := range []*string{&r.Action, &r.Cmd, &r.Key, &r.Alertname, &r.Fingerprint, &r.GroupKey, &r.Reason} {
		*s = strings.Clone(*s)
	}
	if r.Args != nil {
		args := make([]string, len(r.Args))
		for i, a := range r.Args {
			args[i] = strings.Clone(a)
		}
		r.Args = args
	}
	if r.Labels != nil {
		labels := make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			labels[strings.Clone(k)] = strings.Clone(v)
		}
		r.Labels = labels
	}
}

// Started records the start of run id, and counts it.
func (h *History) Started(id uint64, pid int) {
	now := h.now()
	h.mu.Lock()
	e := h.live[id]
	if e == nil {
		h.mu.Unlock()
		return
	}
	e.run.Pid, e.run.Start = pid, now
	h.changed(e)
	action := e.run.Action
	h.mu.Unlock()
	h.tally.count(action, func(c *Counts) { c.Started++ })
}

// Ended records what became of run id, and counts a failure.
func (h *History) Ended(id uint64, res runner.Result) {
	env := h.names.of(res.Action)
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.live[id]
	if e == nil {
		return
	}
	defer func() {
		if e.run.Outcome == Failed {
			h.tally.count(e.run.Action, func(c *Counts) { c.Failed++ })
		}
	}()
	delete(h.live, id)
	r := &e.run
	r.Env = env
	r.Duration = res.Duration.Seconds()
	switch {
	case res.Resolved:
		r.Outcome = Resolved
	case res.Err != nil:
		r.Outcome, r.Error = Failed, res.Err.Error()
	default:
		r.Outcome = Succeeded
	}
	if res.Pid != 0 {
		if res.Signal != 0 {
			r.Signal = unix.SignalName(res.Signal)
		} else {
			code := res.ExitCode
			r.ExitCode = &code
		}
	}
	out, cut := e.tail.Bytes()
	e.tail = nil
	r.Output, r.OutputCut = string(out), cut
	h.output += len(out)
	h.trimOutput()
	h.changed(e)
}

// nameCache remembers the variable names of recent runs by the names as
// they came: the runs of one alert group get the same names, which they
// then share, and on the spawn path working them out again cost several
// µs per run (sorting, and memory touched while processes start).
type nameCache struct {
	mu sync.Mutex
	m  map[string][]string // by the names in order, each ended by a NUL
}

// At most maxCachedNames sets of names, of at most maxCachedKey bytes each,
// are kept; the cache starts over when full.
const (
	maxCachedNames = 64
	maxCachedKey   = 4 << 10
)

// of returns envNames(a), shared with earlier runs where they match.
func (c *nameCache) of(a *runner.Action) []string {
	if a == nil {
		return nil
	}
	var buf [1 << 10]byte
	key := buf[:0]
	for name := range varNames(a) {
		if key = append(append(key, name...), 0); len(key) > maxCachedKey {
			return envNames(a)
		}
	}
	c.mu.Lock()
	names, ok := c.m[string(key)]
	c.mu.Unlock()
	if ok {
		return names
	}
	names = envNames(a)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]string)
	}
	if len(c.m) >= maxCachedNames {
		clear(c.m)
	}
	c.m[string(key)] = names
	c.mu.Unlock()
	return names
}

// varNames yields the names of an action's variables in the order it has
// them, its notification's first.
func varNames(a *runner.Action) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, vars := range [2][]string{a.CommonEnv, a.Env} {
			for _, kv := range vars {
				if name, _, _ := strings.Cut(kv, "="); !yield(name) {
					return
				}
			}
		}
	}
}

// envNames are the names of the variables of an action, in order, those of
// the numbered alerts (AMX_ALERT_<n>_...) once each. The names share one
// new string: a run keeps them, and a substring of a variable would keep
// its value too.
func envNames(a *runner.Action) []string {
	if a == nil {
		return nil
	}
	const numbered = "AMX_ALERT_<n>_"
	// Names as they are, and the rest of numbered names after the number.
	n := len(a.CommonEnv) + len(a.Env)
	plain, rests := make([]string, 0, n), make([]string, 0, n)
	for name := range varNames(a) {
		if rest, ok := strings.CutPrefix(name, "AMX_ALERT_"); ok {
			if i := strings.IndexByte(rest, '_'); i > 0 && digits(rest[:i]) {
				rests = append(rests, rest[i+1:])
				continue
			}
		}
		plain = append(plain, name)
	}
	slices.Sort(plain)
	slices.Sort(rests)
	plain, rests = slices.Compact(plain), slices.Compact(rests)
	var b strings.Builder
	size := len(rests) * len(numbered)
	for _, n := range plain {
		size += len(n)
	}
	for _, r := range rests {
		size += len(r)
	}
	b.Grow(size)
	names := make([]string, 0, len(plain)+len(rests))
	add := func(parts ...string) {
		at := b.Len()
		for _, p := range parts {
			b.WriteString(p)
		}
		names = append(names, b.String()[at:])
	}
	for _, n := range plain {
		add(n)
	}
	for _, r := range rests {
		add(numbered, r)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Runs returns the last runs that f selects, newest first, at most limit
// of them, without their output.
func (h *History) Runs(f Filter, limit int) []Run {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Run
	for i := len(h.ring) - 1; i >= 0 && len(out) < limit; i-- {
		e := h.ring[(h.head+i)%len(h.ring)]
		if f.match(&e.run) {
			r := e.run
			r.Output = ""
			out = append(out, r)
		}
	}
	return out
}

// Run returns one run with its output: what it wrote so far while it runs.
func (h *History) Run(id uint64) (Run, bool) {
	h.mu.Lock()
	e := h.live[id]
	if e == nil {
		for _, x := range h.ring {
			if x.run.ID == id {
				e = x
				break
			}
		}
	}
	if e == nil {
		h.mu.Unlock()
		return Run{}, false
	}
	r, tail := e.run, e.tail
	h.mu.Unlock()
	if tail != nil {
		out, cut := tail.Bytes()
		r.Output, r.OutputCut = string(out), cut
	}
	return r, true
}

// Processes returns the runs whose process runs now, oldest first, each
// with the last lines of its output (at most lines).
func (h *History) Processes(lines int) []Process {
	now := h.now()
	h.mu.Lock()
	out := make([]Process, 0, len(h.live))
	tails := make([]*runner.Tail, 0, len(h.live))
	live := make(map[[2]string]int)
	for _, e := range h.live {
		out = append(out, Process{Run: e.run})
		tails = append(tails, e.tail)
		live[[2]string{e.run.Action, e.run.Key}]++
	}
	h.mu.Unlock()
	for i := range out {
		p := &out[i]
		if !p.Start.IsZero() {
			p.Elapsed = now.Sub(p.Start).Seconds()
		}
		p.Live = live[[2]string{p.Action, p.Key}]
		out, _ := tails[i].Bytes()
		p.Output = lastLines(string(out), lines)
	}
	slices.SortFunc(out, func(a, b Process) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// lastLines is the end of s, at most n lines.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			if n--; n == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}

// Save writes the runs changed since the last save to the store, if any.
func (h *History) Save() error {
	if h.store == nil {
		return nil
	}
	h.mu.Lock()
	put := make(map[uint64][]byte, len(h.dirty))
	var err error
	for id, e := range h.dirty {
		r := e.run
		if e.tail != nil {
			// Still running: its output is saved when it ends.
			r.Output = ""
		}
		if put[id], err = json.Marshal(&r); err != nil {
			break
		}
	}
	dirty, gone := h.dirty, h.gone
	h.dirty, h.gone = make(map[uint64]*entry), nil
	h.mu.Unlock()
	if err == nil {
		err = h.store.Write(put, gone)
	}
	if err != nil {
		// Kept for the next save, under what changed meanwhile.
		h.mu.Lock()
		for id, e := range dirty {
			if _, ok := h.dirty[id]; !ok {
				h.dirty[id] = e
			}
		}
		h.gone = append(gone, h.gone...)
		h.mu.Unlock()
		return fmt.Errorf("run history: save: %w", err)
	}
	return nil
}
