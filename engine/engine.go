package engine

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner"
)

// Engine answers webhook notifications under the current rules.
type Engine struct {
	log *slog.Logger
	m   *metrics
	// run is shared by every rules snapshot, so processes started under
	// old rules keep their max accounting and resolved_signal.
	run *runner.Runner
	// The settings a reload may change: each notification reads each once.
	rules   atomic.Pointer[Rules]
	maxBody atomic.Int64
	bodies  bodyBudget // what the request bodies being read or handled hold
	gc      gcPace
	// maxAlerts caps the alerts of one notification; capacity the
	// processes running at once.
	maxAlerts atomic.Int64
	capacity  Capacity
	// window is the dedupe window, as a time.Duration.
	window atomic.Int64
	cert   atomic.Pointer[tls.Certificate]
	auth   atomic.Pointer[rules.Auth]
	ready  atomic.Bool
	record *Recorder // nil when not recording
	// state is the delivery state: what ran for which occurrence, the
	// limits, the scripts' values; ownState when the engine made it, and
	// closes it.
	state    state.Store
	ownState bool
	// running counts the occurrences processes run for here, for the
	// backstop of resolves broadcast while this replica missed them.
	running occurrences
	// hist is what this amx ran and refused, for the status page.
	hist    *history.History
	started time.Time
	// What the status page says of this amx: its version, host and the
	// address it listens on (set by Serve).
	version   string
	host      string
	listening atomic.Pointer[string]
	stop      chan struct{}
	stopOnce  sync.Once

	reload reloader
}

// Options configure an Engine.
type Options struct {
	// Config is the configuration in force at start, Rules its compiled
	// rules.
	Config *rules.Config
	Rules  *Rules
	Log    *slog.Logger
	// Source is where Reload reads the configuration again.
	Source rules.Source
	// Level, when set, follows the configuration's verbose on reload:
	// debug with it, BaseLevel without.
	Level     *slog.LevelVar
	BaseLevel slog.Level
	// Record, when set, gets every valid notification as it arrived.
	Record *Recorder
	// State is the delivery state; nil keeps it in memory. The engine
	// does not close it.
	State state.Store
	// Version is shown on the status page.
	Version string
}

// New returns an Engine for a loaded configuration and its compiled rules.
func New(opts Options) *Engine {
	m := newMetrics()
	e := &Engine{
		log:     opts.Log,
		m:       m,
		record:  opts.Record,
		run:     runner.New(runner.Options{Logger: opts.Log, Metrics: m.runner}),
		state:   opts.State,
		started: time.Now(),
		version: cmp.Or(opts.Version, "amx"),
	}
	e.host, _ = os.Hostname()
	if e.state == nil {
		e.state = state.NewMemory(state.Options{Retention: opts.Config.State.Retention, Log: opts.Log})
		e.ownState = true
	}
	e.state.OnEvict(func(kind string) { m.evicted.WithLabelValues(kind).Inc() })
	e.hist = openHistory(e.state, opts.Log)
	// A resolve another replica received signals what runs here.
	e.state.OnResolve(func(fingerprints []string) { e.run.Resolve(fingerprints) })
	e.stop = make(chan struct{})
	if e.state.Shared() {
		const backstop = 10 * time.Second
		go e.every(backstop, func() { e.backstopOnce(backstop) })
	}
	if e.hist.Persistent() {
		go e.every(time.Second, e.saveHistory)
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "am_executor_max_processes",
		Help: "The max_processes limit in force (0: none); am_executor_processes_current is the count.",
	}, func() float64 { return float64(e.capacity.max.Load()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "am_executor_request_body_bytes_inflight",
		Help: "Bytes held for request bodies being read or handled (bounded by max_inflight_body_bytes).",
	}, func() float64 { return float64(e.bodies.used.Load()) }))
	e.reload.src, e.reload.level, e.reload.base = opts.Source, opts.Level, opts.BaseLevel
	e.reload.listen, e.reload.tls = opts.Config.ListenAddress, opts.Config.Certificate != nil
	e.apply(opts.Config, opts.Rules)
	e.ready.Store(true)
	return e
}

// Handler returns the HTTP routes: the webhook on every path not taken by
// another route (the old executor answered on any path), health, readiness
// and metrics.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", e.guard(http.HandlerFunc(e.webhook)))
	mux.HandleFunc("/_health", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "All systems are functioning within normal specifications.\n")
	})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !e.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := e.state.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "OK\n")
	})
	// Health and readiness stay open; metrics and reload behind the same
	// credentials when auth.protect_metrics says so.
	metrics, reload := promhttp.HandlerFor(e.m.reg, promhttp.HandlerOpts{}), http.HandlerFunc(e.reloadHandler)
	mux.Handle("/metrics", e.guardIfProtected(metrics))
	mux.Handle("/api/v1/state", e.guard(http.HandlerFunc(e.stateAPI)))
	mux.Handle("/-/reload", e.guardIfProtected(reload))
	e.statusRoutes(mux)
	return mux
}

// webhook receives one notification. Bad input is answered 4xx with a
// one-line reason and nothing runs: Alertmanager does not retry 4xx. A 500
// asks Alertmanager to retry, so it is kept for failures a retry can fix.
func (e *Engine) webhook(w http.ResponseWriter, r *http.Request) {
	// POST is what Alertmanager sends; GET with a body is accepted because
	// the old README replayed payloads with `curl -X GET --data-binary`.
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "POST")
		e.reject(w, http.StatusMethodNotAllowed, stageRead, fmt.Errorf("method %s not allowed: use POST", r.Method))
		return
	}
	maxBody := e.maxBody.Load()
	// A large body is announced: the buffer that reads it grows by
	// doubling, which is garbage enough to matter already.
	if r.ContentLength >= largeBody && r.ContentLength <= maxBody {
		e.gc.enter()
		defer e.gc.leave()
	}
	body, held, err := readBody(http.MaxBytesReader(w, r.Body, maxBody), r.ContentLength, maxBody, &e.bodies)
	defer e.bodies.give(held)
	if err != nil {
		if errors.Is(err, errBodiesFull) {
			// Not the sender's fault: a retry once other bodies are done
			// succeeds.
			w.Header().Set("Connection", "close")
			e.reject(w, http.StatusServiceUnavailable, stageBusy, err)
			return
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			e.reject(w, http.StatusRequestEntityTooLarge, stageRead,
				fmt.Errorf("request body larger than max_body_bytes (%d)", maxBody))
			return
		}
		e.reject(w, http.StatusBadRequest, stageRead, fmt.Errorf("read body: %w", err))
		return
	}
	msg, err := DecodeMax(body, int(e.maxAlerts.Load()))
	if err != nil {
		e.reject(w, http.StatusBadRequest, stageUnmarshal, err)
		return
	}
	if e.record != nil {
		// A recording that fails must not fail the notification.
		if err := e.record.Record(time.Now(), msg.GroupKey, body); err != nil {
			e.log.Warn("recording the notification", "err", err)
		}
	}
	d := e.handle(r.Context(), msg)
	switch {
	case d.busy != nil:
		e.m.errors.WithLabelValues(stageBusy).Inc()
		e.answer(w, msg.Status, http.StatusServiceUnavailable, strings.Join(append(d.failures, d.busy.Error()), "\n"))
		e.delivered(d, false)
	case len(d.failures) > 0:
		e.answer(w, msg.Status, http.StatusInternalServerError, strings.Join(d.failures, "\n"))
		e.delivered(d, false)
	default:
		e.answer(w, msg.Status, http.StatusOK, "ok")
		// Delivered only once Alertmanager can have it: a client gone
		// before the answer is written retries.
		e.delivered(d, http.NewResponseController(w).Flush() == nil && r.Context().Err() == nil)
	}
}

// Handle decides and runs one notification under the current rules, and
// returns one line per failure that must be reported to Alertmanager, and
// an error when some actions could not start for lack of capacity or
// because the state store refused, which a retry may find. The answer is
// taken as delivered.
func (e *Engine) Handle(ctx context.Context, msg *Message) (failures []string, busy error) {
	d := e.handle(ctx, msg)
	e.delivered(d, len(d.failures) == 0 && d.busy == nil)
	return d.failures, d.busy
}

// copyWait bounds how long a copy of a notification waits for the answer
// of the delivery it copies: below Alertmanager's 10 s, so that the copy's
// own answer reaches it.
const copyWait = 8 * time.Second

// delivery is a notification handled, until its answer is written.
type delivery struct {
	failures []string
	busy     error
	// outcomes are how this delivery's own actions went (failed or
	// succeeded), settled once the answer is written, so that a copy
	// waiting for them answers after it; copies are the actions it
	// skipped as duplicates of successes, to mark delivered with it.
	outcomes, copies []state.Settlement
	// ends may hold the lease of its last process to end, to give back
	// with the settle.
	ends *endings
}

// endings holds the lease of a delivery's last process to end, when that
// is before the delivery settles: its answer is then being written, and
// the lease is given back with its action's settlement. Every other lease
// is released when its process ends, so that max does not count a process
// that has ended while its delivery waits for others (or for the
// deliveries it copies: a delivery with copies to wait for holds nothing).
type endings struct {
	mu      sync.Mutex
	running int // the delivery's processes that have not ended
	settled bool
	held    int // the action whose lease is held, by its index in outcomes
	lease   state.Lease
}

// hold keeps the lease of action i for the settle, or reports that it
// must be released now.
func (x *endings) hold(i int, l state.Lease) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.running--
	if x.settled || x.running > 0 {
		return false
	}
	x.held, x.lease = i, l
	return true
}

// settle gives each held lease to its action's settlement, and lets no
// more be held.
func (x *endings) settle(outcomes []state.Settlement) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.settled = true
	if x.held >= 0 {
		outcomes[x.held].Release = x.lease
	}
}

// delivered settles the delivery's claims in one call, once its answer is
// written: with an answer that reached Alertmanager as a success, the
// successes are delivered (a copy within the dedupe window is then a
// duplicate, a later one a repeat); else they stay succeeded, and a retry
// skips them for state.retention.
func (e *Engine) delivered(d delivery, ok bool) {
	d.ends.settle(d.outcomes)
	settle := d.outcomes
	for i := range settle {
		if ok && settle[i].Outcome == state.Succeeded {
			settle[i].Outcome = state.Delivered
		}
	}
	if ok {
		for _, c := range d.copies {
			c.Outcome = state.Delivered
			settle = append(settle, c)
		}
	}
	if len(settle) == 0 {
		return
	}
	if err := e.state.Settle(context.Background(), settle); err != nil {
		e.stateError("settle", err)
	}
}

func (e *Engine) stateError(op string, err error) {
	e.m.stateErrors.WithLabelValues(op).Inc()
	e.log.Error("state store", "op", op, "err", err)
}

func (e *Engine) handle(ctx context.Context, msg *Message) delivery {
	var d delivery
	plan := Decide(ctx, e.rules.Load(), msg, StateReader(ctx, e.state))
	// Skips are decisions, not events: counted on the notification's line,
	// each one with its reason at debug level (a route that skips every
	// alert of a large group would otherwise log a line per alert).
	var skipped skipCounts
	run := 0
	debug := e.log.Enabled(ctx, slog.LevelDebug)
	for i, s := range plan.Skips {
		if s.Reason == SkipLua {
			if debug {
				e.log.Debug("skipped by its route", "route", s.Name, "fingerprint", s.Fingerprint, "reason", s.Detail)
			}
		} else if debug {
			e.log.Debug("skipped", "name", s.Name, "reason", s.Reason)
		}
		// A route's skips come one after the other, and each run of
		// them is counted at once: looking a counter up by its labels
		// costs more than a skip.
		run++
		if next := i + 1; next < len(plan.Skips) && plan.Skips[next].Reason == s.Reason && plan.Skips[next].Name == s.Name {
			continue
		}
		e.m.skipped.WithLabelValues(s.Reason).Add(float64(run))
		e.hist.CountSkip(s.Name, s.Reason, run)
		skipped.add(s.Reason, run)
		if s.Reason == SkipLua {
			e.m.routeSkipped.WithLabelValues(s.Name).Add(float64(run))
		}
		run = 0
	}
	if plan.EnvCut > 0 {
		e.log.Warn("too many alerts for the environment: commands find them all in AMX_PAYLOAD_FILE", "group_key", msg.GroupKey,
			"alerts", len(msg.Alerts), "in_environment", len(msg.Alerts)-plan.EnvCut)
	}
	if n := len(plan.EnvDropped); n > 0 {
		e.log.Warn("variables left out of the commands' environment", "group_key", msg.GroupKey,
			"count", n, "variables", plan.EnvDropped[:min(n, 10)])
	}
	// A failing script fails its route for that alert only: the other
	// routes' actions still run.
	for _, re := range plan.Errors {
		e.m.luaErrors.WithLabelValues(re.Route, re.Err.Kind).Inc()
		e.hist.CountLuaError(re.Route)
		e.log.Error("route failed", "route", re.Route, "fingerprint", re.Fingerprint, "err", re.Err.Msg)
		if re.Retry {
			d.failures = append(d.failures, re.Route+": "+re.Err.Msg)
		}
	}

	// Signal first: a process bound to an alert that resolved in this very
	// notification must not outlive it, while the actions planned now (a
	// route's cleanup for that alert, say) must not be hit by the signal.
	e.run.Resolve(plan.Resolved)
	if len(plan.Resolved) > 0 {
		if err := e.state.Broadcast(ctx, plan.Resolved); err != nil {
			e.stateError("broadcast", err)
		}
	}
	window := time.Duration(e.window.Load())
	adm, err := Admit(ctx, e.state, &plan, window, &e.capacity)
	if err != nil {
		e.stateError("admit", err)
		d.busy = fmt.Errorf("state store: %v: nothing started; retry later", err)
		return d
	}
	for _, r := range adm.Refused {
		e.log.Warn("state change refused", "err", r)
	}
	sorted := e.sortAdmission(msg, &plan, adm, window, &d)
	// Admission's skips are counted before anything runs, once per
	// reason, as the plan's are.
	e.countSkips(&skipped, sorted.skipped)
	results := e.run.Run(sorted.actions)
	d.outcomes = make([]state.Settlement, 0, len(results))
	for j, res := range results {
		claim := &plan.Claims[sorted.index[j]]
		outcome := state.Succeeded
		if res.Err != nil {
			outcome = state.Failed
			// A start refused because amx is stopping is amx's failure,
			// not the command's: a retry reaches the restarted amx.
			if res.Action.NotifyOnFailure || errors.Is(res.Err, runner.ErrShuttingDown) {
				d.failures = append(d.failures, res.Action.Name+": "+res.Err.Error())
			}
		}
		d.outcomes = append(d.outcomes, state.Settlement{ID: claim.ID, Once: claim.Once, Outcome: outcome, Window: window})
	}
	var copies skipCounts
	e.awaitCopies(ctx, msg, &plan, sorted.pending, window, &d, &copies)
	e.countSkips(&skipped, copies)
	refused := sorted.skipped.count(SkipCapacity)
	// One line per notification, once its actions have started (or ended,
	// as they wait): skipped counts every action or alert left out, with a
	// field per reason.
	e.log.InfoContext(ctx, "notification", append([]any{"receiver", msg.Receiver, "status", msg.Status, "alerts", len(msg.Alerts),
		"group_key", msg.GroupKey, "actions", len(plan.Actions), "resolved", len(plan.Resolved)}, skipped.attrs()...)...)
	if refused > 0 {
		e.log.Warn("actions not started: amx runs max_processes already", "group_key", msg.GroupKey, "refused", refused)
		// What ran is remembered, so a retry runs only what was refused.
		d.busy = fmt.Errorf("%d actions not started: amx runs max_processes already; retry later", refused)
	}
	return d
}

// sorted is what admission made of a plan's actions.
type sorted struct {
	actions []runner.Action // to start, each releasing its lease when done
	index   []int           // of each in the plan
	pending []int           // copies of a delivery still being answered
	skipped skipCounts
}

// sortAdmission turns the admission's verdicts into the actions to start,
// bound to their lease and capacity slot, the copies to wait for, and the
// skips, each logged as its reason deserves.
func (e *Engine) sortAdmission(msg *Message, plan *Plan, adm Admission, window time.Duration, d *delivery) sorted {
	var out sorted
	var refusals []history.Run
	ends := &endings{held: -1}
	d.ends = ends
	for i := range plan.Actions {
		act, claim, reason := &plan.Actions[i], &plan.Claims[i], adm.Reasons[i]
		if adm.Stale[i] {
			e.log.Warn("a claim was left pending by an earlier run of amx: counted as started", "name", act.Name,
				"cmd", act.Cmd, "fingerprint", act.Fingerprint, "skipped", reason)
		}
		switch reason {
		case "":
			id, tail := e.hist.Add(runOf(msg, plan, i))
			act.Output = tail
			act.Started = func(pid int) { e.hist.Started(id, pid) }
			act.Ended = e.ended(id, len(out.actions), adm.Leases[i], claim, act.Fingerprint, ends)
			out.actions = append(out.actions, *act)
			out.index = append(out.index, i)
			continue
		case state.Pending:
			e.log.Info("a copy of a notification still being answered: waiting for the answer of the delivery it copies",
				"name", act.Name, "cmd", act.Cmd, "fingerprint", act.Fingerprint)
			out.pending = append(out.pending, i)
			continue
		case state.Rate:
			e.log.Warn("skipped: rate limit reached", "name", act.Name, "cmd", act.Cmd, "key", claim.Key,
				"rate", fmt.Sprintf("%d/%s", claim.Rate.N, claim.Rate.Per))
		case state.Duplicate, state.Once:
			// Delivered with this answer: a retry that reaches
			// Alertmanager ends the retry case for what succeeded.
			d.copies = append(d.copies, state.Settlement{ID: claim.ID, Once: claim.Once, Window: window, Copy: true})
			e.log.Debug("skipped: already ran for this occurrence", "name", act.Name, "cmd", act.Cmd, "fingerprint", act.Fingerprint, "reason", reason)
		case SkipCapacity: // one warning for the notification
		default:
			e.log.Info("skipped", "reason", reason, "name", act.Name, "cmd", act.Cmd, "key", claim.Key, "fingerprint", act.Fingerprint)
		}
		out.skipped.add(reason, 1)
		refusals = refused(refusals, msg, plan, i, reason)
	}
	e.hist.Skip(refusals)
	// Set before any of them starts.
	ends.running, ends.settled = len(out.actions), len(out.pending) > 0
	return out
}

// ended is what admitted action i (of the actions run) does once the
// runner is done with it: give back its lease (with its settlement, if that
// is still to come: one call to the store instead of two) and capacity
// slot, and stop counting its occurrence for the backstop.
func (e *Engine) ended(id uint64, i int, lease state.Lease, claim *state.Claim, fingerprint string, ends *endings) func(runner.Result) {
	occ := claim.Occurrence
	if !claim.Firing {
		occ = "" // its resolve has come already
	}
	if occ != "" {
		e.running.add(occ, fingerprint)
	}
	return func(res runner.Result) {
		if !ends.hold(i, lease) {
			e.state.Release(lease)
		}
		e.hist.Ended(id, res)
		e.capacity.give(1)
		if occ != "" {
			e.running.remove(occ)
		}
	}
}

// awaitCopies waits for the deliveries the pending actions copy, and
// answers as each did. An original still running after copyWait has not
// answered Alertmanager in time either: the copy answers that it runs, so
// that Alertmanager logs the notification delivered and can send the
// resolve that stops it.
func (e *Engine) awaitCopies(ctx context.Context, msg *Message, plan *Plan, pending []int, window time.Duration, d *delivery, skipped *skipCounts) {
	var refusals []history.Run
	defer func() { e.hist.Skip(refusals) }()
	for _, i := range pending {
		act, claim := &plan.Actions[i], &plan.Claims[i]
		wctx, cancel := context.WithTimeout(ctx, copyWait)
		outcome, err := e.state.Await(wctx, claim.ID)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			d.failures = append(d.failures, act.Name+": a copy of this notification is still running it: "+err.Error())
		case outcome == state.Failed:
			if act.NotifyOnFailure {
				d.failures = append(d.failures, act.Name+": failed in the delivery this notification is a copy of")
			}
		default: // succeeded, or still running
			skipped.add(state.Duplicate, 1)
			refusals = refused(refusals, msg, plan, i, state.Duplicate)
			d.copies = append(d.copies, state.Settlement{ID: claim.ID, Once: claim.Once, Window: window, Copy: true})
		}
	}
}

// runOf is the history's record of action i of a plan.
func runOf(msg *Message, plan *Plan, i int) history.Run {
	act, claim := &plan.Actions[i], &plan.Claims[i]
	r := history.Run{Start: time.Now(), Action: act.Name, Cmd: act.Cmd, Args: act.Args, Key: claim.Key, Max: claim.Max,
		Fingerprint: act.Fingerprint, GroupKey: msg.GroupKey, Labels: msg.CommonLabels}
	if i < len(plan.Alerts) && plan.Alerts[i] != nil {
		r.Labels = plan.Alerts[i].Labels
	}
	r.Alertname = r.Labels["alertname"]
	return r
}

// refused adds the refusal of action i to runs: to the last one when that
// is the same action refused for the same reason, so that a large group
// refused as a whole is one row.
func refused(runs []history.Run, msg *Message, plan *Plan, i int, reason string) []history.Run {
	if n := len(runs); n > 0 && runs[n-1].Action == plan.Actions[i].Name && runs[n-1].Reason == reason {
		runs[n-1].Count++
		return runs
	}
	r := runOf(msg, plan, i)
	r.Reason, r.Count = reason, 1
	return append(runs, r)
}

// openHistory opens the run history in the state's file, or in memory
// when the state has no file. A history that cannot be read is started
// anew: it must not keep amx from answering.
func openHistory(st state.Store, log *slog.Logger) *history.History {
	recs, err := state.RecordsIn(st, "history/v1")
	if err == nil && recs != nil {
		var h *history.History
		if h, err = history.Open(recs); err == nil {
			return h
		}
	}
	if err != nil {
		log.Error("the run history cannot be read; starting a new one in memory", "err", err)
	}
	return history.New()
}

// saveHistory writes the history's changes to the state file.
func (e *Engine) saveHistory() {
	if err := e.hist.Save(); err != nil {
		e.stateError("history", err)
	}
}

// every calls f every period until the engine stops.
func (e *Engine) every(period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		f()
	}
}

// skipCounts counts skips by reason, for the notification's log line.
type skipCounts struct {
	total   int
	reasons []string
	counts  []int
}

// add counts n skips for a reason; an empty reason or no skip is nothing.
func (c *skipCounts) add(reason string, n int) {
	if reason == "" || n == 0 {
		return
	}
	c.total += n
	for i, r := range c.reasons {
		if r == reason {
			c.counts[i] += n
			return
		}
	}
	c.reasons = append(c.reasons, reason)
	c.counts = append(c.counts, n)
}

// countSkips adds skips to the metric and to the notification's counts.
func (e *Engine) countSkips(notification *skipCounts, c skipCounts) {
	for i, r := range c.reasons {
		e.m.skipped.WithLabelValues(r).Add(float64(c.counts[i]))
		notification.add(r, c.counts[i])
	}
}

// count is the number of skips for a reason.
func (c *skipCounts) count(reason string) int {
	for i, r := range c.reasons {
		if r == reason {
			return c.counts[i]
		}
	}
	return 0
}

// attrs are skipped=<total> and skipped_<reason>=<n> for each reason seen.
func (c *skipCounts) attrs() []any {
	attrs := []any{"skipped", c.total}
	for i, r := range c.reasons {
		attrs = append(attrs, "skipped_"+r, c.counts[i])
	}
	return attrs
}

func (e *Engine) reject(w http.ResponseWriter, code int, stage string, err error) {
	e.m.errors.WithLabelValues(stage).Inc()
	e.log.Warn("bad request", "code", code, "err", err)
	e.answer(w, "invalid", code, err.Error())
}

func (e *Engine) answer(w http.ResponseWriter, status string, code int, text string) {
	e.m.notifs.WithLabelValues(status, strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// With its length the answer is one write: a flush of an answer of
	// unknown length is chunked, and its end a second write.
	w.Header().Set("Content-Length", strconv.Itoa(len(text)+1))
	w.WriteHeader(code)
	io.WriteString(w, text+"\n")
}

// Shutdown stops the engine: readiness fails, no new process starts, running
// ones may finish until ctx is done, then their process groups are killed.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.ready.Store(false)
	e.stopOnce.Do(func() { close(e.stop) })
	err := e.run.Shutdown(ctx)
	// The processes have ended: their ends are in the history.
	e.saveHistory()
	if e.ownState {
		e.state.Close()
	}
	return err
}

// occurrences counts the live processes per alert occurrence.
type occurrences struct {
	mu sync.Mutex
	m  map[string]liveOccurrence
}

type liveOccurrence struct {
	fingerprint string
	n           int
}

func (o *occurrences) add(occ, fingerprint string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[string]liveOccurrence)
	}
	x := o.m[occ]
	o.m[occ] = liveOccurrence{fingerprint, x.n + 1}
}

func (o *occurrences) remove(occ string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if x := o.m[occ]; x.n <= 1 {
		delete(o.m, occ)
	} else {
		o.m[occ] = liveOccurrence{x.fingerprint, x.n - 1}
	}
}

func (o *occurrences) list() (occs, fingerprints []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for occ, x := range o.m {
		occs, fingerprints = append(occs, occ), append(fingerprints, x.fingerprint)
	}
	return occs, fingerprints
}

// backstopOnce is one round of the backstop, which signals the processes
// running here for an occurrence another replica saw resolve, in case its
// broadcast was missed (this replica was reconnecting to the store).
func (e *Engine) backstopOnce(timeout time.Duration) {
	occs, fps := e.running.list()
	if len(occs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	done, err := e.state.Tombstoned(ctx, occs)
	cancel()
	if err != nil {
		e.stateError("backstop", err)
		return
	}
	var resolved []string
	for _, occ := range done {
		for i := range occs {
			if occs[i] == occ {
				resolved = append(resolved, fps[i])
			}
		}
	}
	if len(resolved) > 0 {
		e.log.Warn("resolves found by the backstop, not by their broadcast: signalling", "fingerprints", resolved)
		e.run.Resolve(resolved)
	}
}
