package engine

import (
	"cmp"
	"crypto/tls"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/amx-dev/amx/rules"
)

// reloader is the engine's reload state. Reloads are serialized; the
// notifications answered meanwhile read the snapshot in force.
type reloader struct {
	mu      sync.Mutex
	src     rules.Source
	level   *slog.LevelVar
	base    slog.Level     // the level without verbose
	watcher *rules.Watcher // nil when not watching
	cfg     *rules.Config  // in force
	// What cannot change without a restart: the address listened on and
	// whether the listener speaks TLS.
	listen string
	tls    bool
	// When the configuration in force was loaded, and the error of a
	// reload that failed since, for the status page.
	loaded   time.Time
	failed   string
	failedAt time.Time
}

// Reload reads the configuration again from its source, compiles every
// script and, only when all of it is valid, swaps it in. A notification
// being decided keeps the snapshot it started with; processes already
// started keep their max accounting and their resolved_signal, whatever
// the new rules say. On error the rules in force stay as they are, and the
// error names file:line of every problem.
func (e *Engine) Reload() error {
	rl := &e.reload
	rl.mu.Lock()
	defer rl.mu.Unlock()
	cfg, r, err := Load(rl.src, e.log)
	// Watch what this configuration reads even when it is broken: fixing
	// a script it names for the first time must reload too.
	if rl.watcher != nil {
		rl.watcher.Watch(cfg.Files, cfg.Sum)
	}
	if err != nil {
		e.m.reloadOK.Set(0)
		rl.failed, rl.failedAt = err.Error(), time.Now()
		// A line per problem: each names its file:line.
		problems := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = j.Unwrap()
		}
		for _, p := range problems {
			e.log.Error("reload failed; the previous configuration stays in force", "err", p)
		}
		return err
	}
	if cfg.ListenAddress != rl.listen {
		e.log.Warn("listen_address changes only on restart; keeping the old one",
			"listening", rl.listen, "configured", cfg.ListenAddress)
	}
	if cfg.State.Path != rl.cfg.State.Path {
		e.log.Warn("state.path changes on restart only; keeping the state where it is", "state", e.state.String(),
			"new_path", cfg.State.Path)
	}
	if (cfg.Certificate != nil) != rl.tls {
		e.log.Warn("TLS is turned on or off only on restart; keeping the listener as it is", "tls", rl.tls)
	}
	e.apply(cfg, r)
	e.log.Info("configuration reloaded", "file", cfg.File, "commands", len(cfg.Set.Commands),
		"routes", len(cfg.Set.Routes))
	return nil
}

// apply puts a valid configuration in force; the caller holds reload.mu or
// owns the engine alone.
func (e *Engine) apply(cfg *rules.Config, r *Rules) {
	rl := &e.reload
	rl.cfg, rl.loaded, rl.failed = cfg, time.Now(), ""
	e.rules.Store(r)
	e.maxBody.Store(cfg.MaxBodyBytes)
	e.capacity.SetMax(cfg.MaxProcesses)
	e.window.Store(int64(cfg.DedupeWindow))
	e.state.SetRetention(cfg.State.Retention)
	e.maxAlerts.Store(int64(cmp.Or(cfg.MaxAlerts, rules.DefaultMaxAlerts)))
	// One body of the largest size always fits.
	e.bodies.limit.Store(max(cfg.MaxInflightBytes, cfg.MaxBodyBytes))
	e.auth.Store(cfg.Auth)
	if cfg.Certificate != nil && rl.tls {
		e.cert.Store(cfg.Certificate)
	}
	if rl.level != nil {
		rl.level.Set(level(rl.base, cfg.Verbose))
	}
	e.m.reloadOK.Set(1)
	e.m.reloadTime.SetToCurrentTime()
	e.m.configHash.Set(cfg.Sum.Metric())
}

// level is the log level under a configuration: debug when it says
// verbose, else the base level the command line chose.
func level(base slog.Level, verbose bool) slog.Level {
	if verbose {
		return min(base, slog.LevelDebug)
	}
	return base
}

// watch makes every later reload update what w watches, and starts it on
// the configuration in force.
func (e *Engine) watch(w *rules.Watcher) {
	rl := &e.reload
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.watcher = w
	w.Watch(rl.cfg.Files, rl.cfg.Sum)
}

// shutdownGrace is the grace of the configuration in force.
func (e *Engine) shutdownGrace() time.Duration {
	e.reload.mu.Lock()
	defer e.reload.mu.Unlock()
	return e.reload.cfg.ShutdownGrace
}

// certificate serves the certificate of the configuration in force, so that
// a reload rotates it without a restart.
func (e *Engine) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return e.cert.Load(), nil
}

// clientTLS asks clients for a certificate signed by auth.client_ca_file
// while the configuration in force names one; a reload changes the CAs
// for the next handshake.
func (e *Engine) clientTLS(*tls.ClientHelloInfo) (*tls.Config, error) {
	a := e.auth.Load()
	if a == nil || a.ClientCAs == nil {
		return nil, nil // the server's own configuration
	}
	return &tls.Config{
		GetCertificate: e.certificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      a.ClientCAs,
		NextProtos:     []string{"http/1.1"},
	}, nil
}

// reloadHandler is POST /-/reload, as Prometheus and Alertmanager have it:
// 200 when the new configuration is in force, 500 with the reason when the
// old one stays.
func (e *Engine) reloadHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := e.Reload(); err != nil {
		http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK\n"))
}
