package engine

import (
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amx-dev/amx/engine/history"
)

// web holds the status page's templates and style sheet: nothing is
// fetched from elsewhere.
//
//go:embed web
var web embed.FS

var statusTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":      ago,
	"seconds":  seconds,
	"reasons":  reasonText,
	"clock":    func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
	"exitText": exitText,
	"head": func(title, base string, refresh int) any {
		return struct {
			Title, Base string
			Refresh     int
		}{title, base, refresh}
	},
}).ParseFS(web, "web/*.html"))

// Shown runs: the page shows the last shownRuns that its filter selects,
// the API the last limit (maxLimit at most).
const (
	shownRuns   = 100
	maxLimit    = history.Size
	outputLines = 5 // of each live process, on the page
)

// outcomes are those a filter may ask for.
var outcomes = []string{history.Running, history.Succeeded, history.Failed, history.Resolved, history.Skipped, history.Unknown}

// statusRoutes adds the status page and its API to mux, behind the
// webhook's credentials: they show command output. Only GET and HEAD are
// answered; nothing on them starts or stops anything.
func (e *Engine) statusRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(web, "web")
	asset := func(name string) http.Handler {
		return readOnly(func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, static, name) })
	}
	mux.Handle("/status/style.css", asset("style.css"))
	mux.Handle("/status/favicon.svg", asset("favicon.svg"))
	// Browsers ask for it on any page, the JSON ones too; it is never a
	// notification.
	mux.Handle("/favicon.ico", asset("favicon.svg"))
	mux.Handle("/status", e.guard(readOnly(e.statusPage)))
	mux.Handle("/status/runs/{id}", e.guard(readOnly(e.runPage)))
	mux.Handle("/api/v1/processes", e.guard(readOnly(e.processesAPI)))
	mux.Handle("/api/v1/runs", e.guard(readOnly(e.runsAPI)))
	mux.Handle("/api/v1/runs/{id}", e.guard(readOnly(e.runAPI)))
}

// readOnly answers GET and HEAD, and 405 to any other method (which
// would otherwise reach the webhook, on every path not taken).
func readOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed: this page only shows", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	})
}

// Processes is GET /api/v1/processes.
type Processes struct {
	Instance  string            `json:"instance"`
	Processes []history.Process `json:"processes"`
}

// Runs is GET /api/v1/runs.
type Runs struct {
	Instance string        `json:"instance"`
	Runs     []history.Run `json:"runs"`
}

// runsQuery reads a runs filter and limit from a query string.
func runsQuery(r *http.Request, limit int) (history.Filter, int, error) {
	q := r.URL.Query()
	f := history.Filter{Action: q.Get("action"), Alertname: q.Get("alertname"), Outcome: q.Get("outcome")}
	if f.Outcome != "" && !slices.Contains(outcomes, f.Outcome) {
		return f, 0, fmt.Errorf("outcome %q: want one of %s", f.Outcome, strings.Join(outcomes, ", "))
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return f, 0, fmt.Errorf("limit %q: want a number from 1 to %d", s, maxLimit)
		}
		limit = n
	}
	return f, limit, nil
}

func (e *Engine) processesAPI(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, history.ProcessList{Instance: e.instance(), Processes: e.hist.Processes(outputLines)})
}

func (e *Engine) runsAPI(w http.ResponseWriter, r *http.Request) {
	f, limit, err := runsQuery(r, shownRuns)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, history.RunList{Instance: e.instance(), Runs: e.hist.Runs(f, limit)})
}

func (e *Engine) runAPI(w http.ResponseWriter, r *http.Request) {
	run, ok := e.pathRun(w, r)
	if ok {
		writeJSON(w, run)
	}
}

// pathRun finds the run named in the path, or answers 404.
func (e *Engine) pathRun(w http.ResponseWriter, r *http.Request) (history.Run, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	run, ok := e.hist.Run(id)
	if err != nil || !ok {
		http.Error(w, "no such run: "+strconv.Quote(r.PathValue("id"))+" (the history keeps the last "+
			strconv.Itoa(history.Size)+")", http.StatusNotFound)
		return run, false
	}
	return run, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// instance names this amx among replicas: its host and address.
func (e *Engine) instance() string {
	return e.host + " " + e.listenAddr()
}

func (e *Engine) listenAddr() string {
	if a := e.listening.Load(); a != nil {
		return *a
	}
	return e.reload.listen
}

// statusView is what the status page shows.
type statusView struct {
	Version, Instance, Listen, Auth string
	Started                         time.Time
	Uptime                          time.Duration
	State, StateHealth              string
	Shared, Persistent              bool

	ConfigFile, ConfigHash string
	Loaded                 time.Time
	ReloadError            string
	ReloadFailedAt         time.Time

	Rules     []ruleCounts
	Processes []history.Process
	Runs      []history.Run
	Filter    history.Filter
	Outcomes  []string
	Actions   []string
	Refresh   int
	Now       time.Time
}

type ruleCounts struct {
	Kind string
	history.Counts
}

func (e *Engine) statusPage(w http.ResponseWriter, r *http.Request) {
	f, _, err := runsQuery(r, shownRuns)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	v := statusView{
		Version: e.version, Instance: e.instance(), Listen: e.listenAddr(), Auth: "off",
		Started: e.started, Uptime: now.Sub(e.started).Round(time.Second),
		State: e.state.String(), StateHealth: "ok", Shared: e.state.Shared(), Persistent: e.hist.Persistent(),
		Processes: e.hist.Processes(outputLines), Runs: e.hist.Runs(f, shownRuns),
		Filter: f, Outcomes: outcomes, Now: now,
	}
	if a := e.auth.Load(); a.Enabled() {
		v.Auth = "on (" + a.Kinds() + ")"
	}
	if err := e.state.Health(); err != nil {
		v.StateHealth = err.Error()
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("refresh")); err == nil && n > 0 {
		v.Refresh = max(n, 2)
	}
	e.reload.mu.Lock()
	cfg := e.reload.cfg
	v.ConfigFile, v.Loaded = cfg.File, e.reload.loaded
	v.ReloadError, v.ReloadFailedAt = e.reload.failed, e.reload.failedAt
	e.reload.mu.Unlock()
	// As am_executor_config_hash has it, to compare replicas by.
	v.ConfigHash = fmt.Sprintf("%s (am_executor_config_hash %.0f)", hex.EncodeToString(cfg.Sum[len(cfg.Sum)-6:]), cfg.Sum.Metric())
	var names, kinds []string
	for _, c := range cfg.Set.Commands {
		names, kinds = append(names, c.Name), append(kinds, "command")
	}
	for _, rt := range cfg.Set.Routes {
		names, kinds = append(names, rt.Name), append(kinds, "route")
	}
	for i, c := range e.hist.Counts(names) {
		kind := "removed by a reload"
		if i < len(kinds) {
			kind = kinds[i]
		}
		v.Rules = append(v.Rules, ruleCounts{Kind: kind, Counts: c})
	}
	v.Actions = names
	e.page(w, "status.html", v)
}

func (e *Engine) runPage(w http.ResponseWriter, r *http.Request) {
	run, ok := e.pathRun(w, r)
	if ok {
		e.page(w, "run.html", run)
	}
}

// page renders a template with the headers every page has: its content
// only from here, no script at all, never framed.
func (e *Engine) page(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := statusTemplates.ExecuteTemplate(&b, name, data); err != nil {
		e.log.Error("status page", "err", err)
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.Write([]byte(b.String()))
}

// ago is how long before now t was, to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second / 10).String()
}

func reasonText(skipped map[string]int64) string {
	reasons := make([]string, 0, len(skipped))
	for r, n := range skipped {
		if n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
	}
	slices.Sort(reasons)
	return strings.Join(reasons, ", ")
}

// exitText is how a run ended: its exit code, the signal, or its skip
// reason.
func exitText(r history.Run) string {
	switch {
	case r.ExitCode != nil:
		return "exit " + strconv.Itoa(*r.ExitCode)
	case r.Signal != "":
		return r.Signal
	case r.Reason != "":
		if r.Count > 1 {
			return fmt.Sprintf("%s ×%d", r.Reason, r.Count)
		}
		return r.Reason
	}
	return ""
}
