package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	// maxAlerts caps the alerts of one notification, maxProcs the
	// processes running at once.
	maxAlerts atomic.Int64
	maxProcs  atomic.Int64
	cert      atomic.Pointer[tls.Certificate]
	auth      atomic.Pointer[rules.Auth]
	ready     atomic.Bool
	record    *Recorder // nil when not recording
	// done remembers what succeeded, against Alertmanager's re-sends.
	done memory

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
}

// New returns an Engine for a loaded configuration and its compiled rules.
func New(opts Options) *Engine {
	m := newMetrics()
	e := &Engine{
		log: opts.Log,
		m:   m,
		// run is set below: its admission reads the engine's settings.
		record: opts.Record,
		done:   memory{max: defaultMemoryMax},
	}
	e.run = runner.New(runner.Options{Logger: opts.Log, Metrics: m.runner, Admit: func(a *runner.Action, live runner.Counts) string {
		return Admit(a, live, int(e.maxProcs.Load()))
	}})
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
		io.WriteString(w, "OK\n")
	})
	// Health and readiness stay open; metrics and reload behind the same
	// credentials when auth.protect_metrics says so.
	metrics, reload := promhttp.HandlerFor(e.m.reg, promhttp.HandlerOpts{}), http.HandlerFunc(e.reloadHandler)
	mux.Handle("/metrics", e.guardIfProtected(metrics))
	mux.Handle("/-/reload", e.guardIfProtected(reload))
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
	failures, busy := e.Handle(r.Context(), msg)
	if busy != nil {
		e.m.errors.WithLabelValues(stageBusy).Inc()
		e.answer(w, msg.Status, http.StatusServiceUnavailable, strings.Join(append(failures, busy.Error()), "\n"))
		return
	}
	if len(failures) > 0 {
		e.answer(w, msg.Status, http.StatusInternalServerError, strings.Join(failures, "\n"))
		return
	}
	e.answer(w, msg.Status, http.StatusOK, "ok")
}

// Handle decides and runs one notification under the current rules, and
// returns one line per failure that must be reported to Alertmanager, and
// an error when some actions could not start for lack of capacity, which a
// retry may find.
func (e *Engine) Handle(ctx context.Context, msg *Message) (failures []string, busy error) {
	plan := Decide(ctx, e.rules.Load(), msg)
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
		e.log.Error("route failed", "route", re.Route, "fingerprint", re.Fingerprint, "err", re.Err.Msg)
		if re.Retry {
			failures = append(failures, re.Route+": "+re.Err.Msg)
		}
	}

	// Signal first: a process bound to an alert that resolved in this very
	// notification must not outlive it, while the actions planned now (a
	// route's cleanup for that alert, say) must not be hit by the signal.
	e.run.Resolve(plan.Resolved)
	e.done.resolved(plan.Resolved)
	actions, occurrences := e.claim(plan)
	skipped.add(SkipDuplicate, len(plan.Actions)-len(actions))
	refused := 0
	results := e.run.Run(actions)
	for _, res := range results {
		skipped.add(res.Skipped, 1)
	}
	// One line per notification, once its actions have started (or ended,
	// as they wait): skipped counts every action or alert left out, with a
	// field per reason.
	e.log.InfoContext(ctx, "notification", append([]any{"receiver", msg.Receiver, "status", msg.Status, "alerts", len(msg.Alerts),
		"group_key", msg.GroupKey, "actions", len(plan.Actions), "resolved", len(plan.Resolved)}, skipped.attrs()...)...)
	for i, res := range results {
		e.done.settle(occurrences[i], res.Err == nil && res.Skipped == "", time.Now())
		// A start refused because amx is stopping is amx's failure, not
		// the command's: a retry reaches the restarted amx.
		if res.Err != nil && (res.Action.NotifyOnFailure || errors.Is(res.Err, runner.ErrShuttingDown)) {
			failures = append(failures, res.Action.Name+": "+res.Err.Error())
		}
		if res.Skipped == runner.SkipCapacity {
			refused++
		}
	}
	if refused > 0 {
		e.log.Warn("actions not started: amx runs max_processes already", "group_key", msg.GroupKey, "refused", refused)
		// What ran is remembered, so a retry runs only what was refused.
		return failures, fmt.Errorf("%d actions not started: amx runs max_processes already; retry later", refused)
	}
	return failures, nil
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

// attrs are skipped=<total> and skipped_<reason>=<n> for each reason seen.
func (c *skipCounts) attrs() []any {
	attrs := []any{"skipped", c.total}
	for i, r := range c.reasons {
		attrs = append(attrs, "skipped_"+r, c.counts[i])
	}
	return attrs
}

// claim returns the plan's actions that may run, with their occurrences:
// what already succeeded for the same occurrence, or is running for it,
// is skipped, so that a retry after a partial failure runs only what
// failed.
func (e *Engine) claim(plan Plan) ([]runner.Action, []Occurrence) {
	now := time.Now()
	var actions []runner.Action
	var occurrences []Occurrence
	for i, act := range plan.Actions {
		if !e.done.claim(plan.Occurrences[i], now) {
			e.m.skipped.WithLabelValues(SkipDuplicate).Inc()
			e.log.Info("skipped: already ran for this occurrence", "name", act.Name, "cmd", act.Cmd, "fingerprint", act.Fingerprint)
			continue
		}
		actions = append(actions, act)
		occurrences = append(occurrences, plan.Occurrences[i])
	}
	return actions, occurrences
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
	w.WriteHeader(code)
	io.WriteString(w, text+"\n")
}

// Shutdown stops the engine: readiness fails, no new process starts, running
// ones may finish until ctx is done, then their process groups are killed.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.ready.Store(false)
	return e.run.Shutdown(ctx)
}
