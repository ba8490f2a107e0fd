package engine

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/amx-dev/amx/rules"
)

// closeAfterKill bounds how long open answers may take to be written once
// the shutdown grace is over: the runner's SIGTERM, its SIGKILL 5 s later,
// reaping, and the answers themselves.
const closeAfterKill = 12 * time.Second

// HTTPLimits bound what one client can hold of the server: a slow or
// stalled client is cut off instead of keeping a connection forever. There
// is no write timeout: the answer to a notification waits for the commands
// it started, which may run for minutes. Zero fields take the defaults.
type HTTPLimits struct {
	// ReadHeaderTimeout is the time to send the request's headers (10 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is the time to send the whole request, body included
	// (1 min).
	ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection without a request (30 s;
	// Alertmanager reconnects when it next sends).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers (64 KiB).
	MaxHeaderBytes int
}

// DefaultHTTPLimits are the limits of a zero HTTPLimits.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       time.Minute,
	IdleTimeout:       30 * time.Second,
	MaxHeaderBytes:    64 << 10,
}

func (l HTTPLimits) orDefault() HTTPLimits {
	d := DefaultHTTPLimits
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	return d
}

// checkFileLimit warns when the descriptors amx may open exceed its limit:
// a connection takes one, a process up to five while it runs (its output
// pipe, two with separate_stderr; its input pipe while its input is
// written; the pidfd Go keeps, and amx's own once it has run 100 ms), and
// amx a few of its own.
func checkFileLimit(log *slog.Logger, conns, procs int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	need := uint64(conns) + 5*uint64(cmp.Or(procs, 1024)) + 64
	if rl.Cur < need {
		log.Warn("the open file limit is below what max_connections and max_processes may take; raise LimitNOFILE or lower them",
			"limit", rl.Cur, "need", need)
	}
}

// ServeOptions configure Serve.
type ServeOptions struct {
	Options
	// Watch reloads the configuration when its files change.
	Watch bool
	// Reload asks for a reload (SIGHUP); it may be nil.
	Reload <-chan struct{}
	HTTP   HTTPLimits
}

// Serve answers on ln until ctx is cancelled, then shuts down: it stops
// accepting connections, lets running commands finish for the configured
// grace, kills the process groups still running and returns. Meanwhile it
// reloads the configuration on opts.Reload and, with opts.Watch, when the
// configuration's files change.
func Serve(ctx context.Context, ln net.Listener, opts ServeOptions) error {
	log := opts.Log
	e := New(opts.Options)
	addr := ln.Addr().String()
	e.listening.Store(&addr)
	limits := opts.HTTP.orDefault()
	conns := newConnLimit(ln, cmp.Or(opts.Config.MaxConnections, rules.DefaultMaxConnections))
	ln = conns
	checkFileLimit(log, conns.limit, opts.Config.MaxProcesses)
	srv := &http.Server{
		ConnState:         conns.connState,
		Handler:           e.Handler(),
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Watch before serving: a change made once amx answers is seen.
	var changes <-chan struct{}
	if opts.Watch && opts.Config.File != "" {
		w, err := rules.NewWatcher(log, 0, 0)
		if err != nil {
			// Without inotify (out of watches, say) SIGHUP and /-/reload
			// still work: serving beats refusing to start.
			log.Warn("cannot watch the configuration files; reload with SIGHUP or POST /-/reload", "err", err)
		} else {
			wctx, stop := context.WithCancel(ctx)
			watched := make(chan struct{})
			defer func() { stop(); <-watched }()
			e.watch(w)
			go func() { defer close(watched); w.Run(wctx) }()
			changes = w.Changes()
		}
	}
	served := make(chan error, 1)
	go func() {
		if opts.Config.Certificate != nil {
			srv.TLSConfig = &tls.Config{GetCertificate: e.certificate, GetConfigForClient: e.clientTLS}
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	for ctx.Err() == nil {
		select {
		case err := <-served:
			_ = e.Shutdown(context.Background())
			return err
		case <-ctx.Done():
		case <-opts.Reload:
			e.Reload()
		case <-changes:
			e.Reload()
		}
	}

	grace := e.shutdownGrace()
	log.Info("shutting down", "grace", grace)
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() {
		// Answers still waiting for their commands complete once the
		// commands end, or are killed when the grace is over.
		c, cancel := context.WithTimeout(context.Background(), grace+closeAfterKill)
		defer cancel()
		httpDone <- srv.Shutdown(c)
	}()
	runErr := e.Shutdown(graceCtx)
	if err := <-httpDone; err != nil {
		srv.Close()
	}
	if errors.Is(runErr, context.DeadlineExceeded) {
		log.Warn("shutdown grace over: stopped the commands still running")
	}
	log.Info("stopped")
	return nil
}
