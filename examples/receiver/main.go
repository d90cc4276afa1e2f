// Command receiver is a Cakemail webhook receiver to run in production: copy it
// into your service and replace the handlers in handlers.go with your own.
//
// It verifies every delivery, stores it as a River job and answers 2xx only
// once that job is committed, so an acknowledged event survives a crash. River
// workers then run it through a webhooks.Router, retrying failures with backoff;
// a handler's effects commit in the transaction that completes the job.
//
// Configuration comes from the environment:
//
//	CAKEMAIL_WEBHOOK_SECRET  the webhook's signing secret; several, comma-separated, while rotating
//	PORT                     where to listen (default 8080)
//	DATABASE_URL             unset: SQLite file receiver.db in the working directory;
//	                         sqlite:///path/to/file.db: that SQLite file;
//	                         postgres://...: Postgres, which several replicas may share
//
// Routes: POST /webhooks/cakemail and GET /healthz. SIGINT or SIGTERM stops it
// gracefully: no new deliveries are accepted and running jobs finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cakemail-go/webhooks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(ctx, os.Getenv, logger); err != nil {
		logger.Error("receiver stopped", "err", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds a graceful stop: in-flight requests, then running jobs.
const shutdownTimeout = 20 * time.Second

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	secrets := splitSecrets(getenv("CAKEMAIL_WEBHOOK_SECRET"))
	if len(secrets) == 0 {
		return errors.New("CAKEMAIL_WEBHOOK_SECRET is not set")
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("PORT: %q is not a port number", port)
	}
	target, err := parseDatabaseURL(getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	verifier, err := webhooks.NewVerifier(secrets, webhooks.WithOnReject(func(r *http.Request, err error) {
		// err says why (missing, mismatch, too large...) and never holds the
		// signature or the secret, so it is safe to log.
		logger.Warn("delivery refused", "remote", r.RemoteAddr, "err", err)
	}))
	if err != nil {
		return err
	}
	router := newRouter(logger)
	if target.sqlitePath != "" {
		db, err := newSQLiteStore(target.sqlitePath)
		if err != nil {
			return err
		}
		defer db.close()
		logger.Info("database", "kind", "sqlite", "path", target.sqlitePath)
		return serve(ctx, db, verifier, router, port, logger)
	}
	db, err := newPostgresStore(ctx, target.postgresURL)
	if err != nil {
		return err
	}
	defer db.close()
	logger.Info("database", "kind", "postgres")
	return serve(ctx, db, verifier, router, port, logger)
}

// serve is the same whichever database is underneath.
func serve[TTx any](ctx context.Context, db *store[TTx], v *webhooks.Verifier, router *webhooks.Router, port string, logger *slog.Logger) error {
	rc, err := newReceiver(ctx, db, router, logger)
	if err != nil {
		return stoppedEarly(ctx, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return err
	}
	if err := rc.start(ctx); err != nil {
		ln.Close()
		return stoppedEarly(ctx, err)
	}
	srv := &http.Server{
		Handler:           rc.routes(v),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "client", rc.clientID)

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		logger.Info("shutting down: finishing requests and running jobs")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if shutErr := srv.Shutdown(stopCtx); shutErr != nil && err == nil {
		err = shutErr
	}
	if stopErr := rc.stop(stopCtx); stopErr != nil && err == nil {
		err = stopErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// stoppedEarly treats a signal during start-up as a clean stop: nothing was
// acknowledged yet, so there is nothing to finish.
func stoppedEarly(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// splitSecrets reads a comma-separated list, ignoring blanks around and between entries.
func splitSecrets(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
