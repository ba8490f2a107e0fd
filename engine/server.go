package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/amx-dev/amx/rules"
)

// Server timeouts. There is no write timeout: the answer to a notification
// waits for the commands it started, which may run for minutes.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// closeAfterKill bounds how long open answers may take to be written
	// once the shutdown grace is over and the processes were killed.
	closeAfterKill = 5 * time.Second
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Options
	// Watch reloads the configuration when its files change.
	Watch bool
	// Reload asks for a reload (SIGHUP); it may be nil.
	Reload <-chan struct{}
}

// Serve answers on ln until ctx is cancelled, then shuts down: it stops
// accepting connections, lets running commands finish for the configured
// grace, kills the process groups still running and returns. Meanwhile it
// reloads the configuration on opts.Reload and, with opts.Watch, when the
// configuration's files change.
func Serve(ctx context.Context, ln net.Listener, opts ServeOptions) error {
	log := opts.Log
	e := New(opts.Options)
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
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
			srv.TLSConfig = &tls.Config{GetCertificate: e.certificate}
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
		log.Warn("shutdown grace over: killed the commands still running")
	}
	log.Info("stopped")
	return nil
}
