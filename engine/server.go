package engine

import (
	"context"
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

// Serve answers on ln until ctx is cancelled, then shuts down: it stops
// accepting connections, lets running commands finish for the configured
// grace, kills the process groups still running and returns.
func Serve(ctx context.Context, ln net.Listener, cfg *rules.Config, r *Rules, log *slog.Logger) error {
	e := New(cfg, r, log)
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			served <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		_ = e.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}

	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() {
		// Answers still waiting for their commands complete once the
		// commands end, or are killed when the grace is over.
		c, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace+closeAfterKill)
		defer cancel()
		httpDone <- srv.Shutdown(c)
	}()
	runErr := e.Shutdown(grace)
	if err := <-httpDone; err != nil {
		srv.Close()
	}
	if errors.Is(runErr, context.DeadlineExceeded) {
		log.Warn("shutdown grace over: killed the commands still running")
	}
	log.Info("stopped")
	return nil
}
