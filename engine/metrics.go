package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/runner"
)

// Error stages of am_executor_errors_total. The old executor's "read",
// "unmarshal" and "start" keep their meaning.
const (
	stageRead      = "read"      // the request body could not be read, or was too large
	stageUnmarshal = "unmarshal" // the body is not a valid notification
	stageStart     = "start"     // a command could not start
	stageCommand   = "command"   // a command exited non-zero or timed out
	stageBusy      = "busy"      // a request refused by a limit on what amx holds at once (503)
)

// metrics holds every collector amx exports. The am_executor_* names and
// labels are the old executor's, so its dashboards and alerts keep working.
type metrics struct {
	reg       *prometheus.Registry
	runner    runner.Metrics
	errors    *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	notifs    *prometheus.CounterVec
	signalled *prometheus.CounterVec
	// routeSkipped counts skip() per route; luaErrors failed scripts.
	routeSkipped *prometheus.CounterVec
	luaErrors    *prometheus.CounterVec
	// stateErrors counts failed operations of the state store, evicted
	// the entries it dropped before they expired.
	stateErrors *prometheus.CounterVec
	evicted     *prometheus.CounterVec
	// The state of the configuration, named as Prometheus and Alertmanager
	// name theirs.
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	configHash prometheus.Gauge
}

func newMetrics() *metrics {
	const ns = "am_executor"
	m := &metrics{reg: prometheus.NewRegistry()}
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "errors", Name: "total",
		Help: "Total number of errors while processing alerts.",
	}, []string{"stage"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "skipped", Name: "total",
		Help: "Total number of commands that were skipped instead of run for matching alerts.",
	}, []string{"reason"})
	m.signalled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "signalled", Name: "total",
		Help: "Total number of active processes signalled due to alarm resolving.",
	}, []string{"result"})
	m.notifs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "notifications", Name: "total",
		Help: "Webhook notifications received, by status and HTTP answer code.",
	}, []string{"status", "code"})
	m.routeSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "route_skipped", Name: "total",
		Help: "Alerts a Lua route ended with skip(), by route.",
	}, []string{"route"})
	m.luaErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "lua_errors", Name: "total",
		Help: "Lua route invocations that failed, by route and kind (error, timeout, memory, canceled).",
	}, []string{"route", "kind"})
	m.stateErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "state_errors", Name: "total",
		Help: "Operations of the state store that failed, by operation (admit, settle, delete, broadcast, backstop, history).",
	}, []string{"op"})
	m.evicted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: "state_evicted", Name: "total",
		Help: "State entries dropped before they expired because the store was full, by kind.",
	}, []string{"kind"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "config", Name: "last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})
	m.configHash = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "config", Name: "hash",
		Help: "Hash of the configuration in force: the config file, its Lua scripts and TLS files (lowest 48 bits of SHA-256).",
	})
	current := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "processes", Name: "current",
		Help: "Current number of processes running.",
	})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: "process", Name: "duration_seconds",
		Help:    "Time the processes handling alerts ran.",
		Buckets: []float64{1, 10, 60, 600, 900, 1800},
	})
	m.runner = runner.Metrics{
		ProcessesCurrent: current,
		ProcessDuration:  duration,
		Signalled:        m.signalled,
		Errors:           m.errors,
	}
	m.reg.MustRegister(m.errors, m.skipped, m.signalled, m.notifs, m.routeSkipped, m.luaErrors, m.stateErrors, m.evicted,
		m.reloadOK, m.reloadTime, m.configHash, current, duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Export the label values operators alert on from the start, not only
	// after the first occurrence.
	for _, s := range []string{stageRead, stageUnmarshal, stageStart, stageCommand, stageBusy} {
		m.errors.WithLabelValues(s)
	}
	for _, op := range []string{"admit", "settle", "delete", "broadcast", "backstop", "history"} {
		m.stateErrors.WithLabelValues(op)
	}
	for _, r := range []string{SkipNoMatch, SkipLua, SkipFingerOver, SkipCapacity, state.Duplicate, state.Once,
		state.Resolved, state.Cooldown, state.Rate} {
		m.skipped.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "fail"} {
		m.signalled.WithLabelValues(r)
	}
	for _, k := range []string{state.KindClaim, state.KindTombstone, state.KindCooldown, state.KindRate, state.KindValue,
		state.KindApplied} {
		m.evicted.WithLabelValues(k)
	}
	return m
}
