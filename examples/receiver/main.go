// Command receiver is a Cakemail webhook receiver to run in production on
// package inbox: copy it and replace the handlers in handlers.go. A delivery
// is answered 2xx only once it is committed; a handler's effects commit with
// its job. Configuration comes from the environment:
//
//	CAKEMAIL_WEBHOOK_SECRET  the webhook's signing secret; several, comma-separated, while rotating
//	PORT                     where to listen (default 8080)
//	DATABASE_URL             unset: SQLite file receiver.db in the working directory;
//	                         sqlite:///path/to/file.db: that SQLite file;
//	                         postgres://...: Postgres, which several replicas may share
//	ADMIN_ADDR               metrics and River UI (default 127.0.0.1:9091); a non-loopback
//	                         address needs ADMIN_PASSWORD
//	ADMIN_PASSWORD           when set, basic auth (user admin) on every admin path
//	ADMIN_HOSTS              host names the admin port is reached by besides its address and
//	                         localhost, comma-separated (admin.example.com behind a proxy)
//
// Routes: POST /webhooks/cakemail and GET /healthz; on ADMIN_ADDR, /metrics
// and /riverui/. SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"crypto/subtle"
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
	"github.com/cakemail-go/webhooks/inbox"
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

const shutdownTimeout = 20 * time.Second // in-flight requests, then running jobs

type config struct {
	secrets, adminHosts                         []string
	port, databaseURL, adminAddr, adminPassword string
}

func readConfig(getenv func(string) string) (*config, error) {
	c := &config{port: getenv("PORT"), databaseURL: getenv("DATABASE_URL"),
		adminAddr: getenv("ADMIN_ADDR"), adminPassword: getenv("ADMIN_PASSWORD")}
	for _, s := range strings.Split(getenv("CAKEMAIL_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.secrets = append(c.secrets, s)
		}
	}
	for _, h := range strings.Split(getenv("ADMIN_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.adminHosts = append(c.adminHosts, h)
		}
	}
	if len(c.secrets) == 0 {
		return nil, errors.New("CAKEMAIL_WEBHOOK_SECRET is not set")
	}
	if c.port == "" {
		c.port = "8080"
	}
	if n, err := strconv.Atoi(c.port); err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("PORT: %q is not a port number", c.port)
	}
	if c.databaseURL == "" {
		c.databaseURL = "sqlite://receiver.db"
	}
	if c.adminAddr == "" {
		c.adminAddr = "127.0.0.1:9091"
	}
	host, _, err := net.SplitHostPort(c.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR: %q is not host:port", c.adminAddr)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && c.adminPassword == "" {
		return nil, fmt.Errorf("ADMIN_ADDR %s is reachable from other hosts: set ADMIN_PASSWORD, or listen on 127.0.0.1", c.adminAddr)
	}
	return c, nil
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	ib, err := inbox.Open(ctx, cfg.databaseURL, newRouter(logger), append(inboxOptions(), inbox.WithLogger(logger), inbox.WithAdminHosts(cfg.adminHosts...))...)
	if err != nil {
		return stoppedEarly(ctx, err)
	}
	verifier, err := webhooks.NewVerifier(cfg.secrets, webhooks.WithOnReject(func(r *http.Request, err error) {
		// err says why (missing, mismatch, too large...) and never holds the
		// signature, the secret or the body, so it is safe to log.
		logger.Warn("delivery refused", "remote", r.RemoteAddr, "err", err)
		ib.OnReject(r, err)
	}))
	if err != nil {
		ib.Stop(ctx)
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", verifier.Middleware(ib))
	mux.Handle("GET /healthz", ib.HealthHandler())
	// The admin handler refuses other host names (DNS rebinding) and
	// cross-site changes (pages the operator's browser opens) by itself.
	servers := []*http.Server{
		newServer(net.JoinHostPort("", cfg.port), mux, logger),
		newServer(cfg.adminAddr, basicAuth(cfg.adminPassword, ib.AdminHandler()), logger),
	}
	listeners := make([]net.Listener, len(servers))
	for i, srv := range servers {
		if listeners[i], err = net.Listen("tcp", srv.Addr); err == nil && i == len(servers)-1 {
			err = ib.Start(ctx)
		}
		if err != nil {
			for _, ln := range listeners[:i+1] {
				if ln != nil {
					ln.Close()
				}
			}
			ib.Stop(context.WithoutCancel(ctx))
			return stoppedEarly(ctx, err)
		}
	}
	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}
	logger.Info("listening", "addr", listeners[0].Addr().String(), "admin", listeners[1].Addr().String())

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		logger.Info("shutting down: finishing requests and running jobs")
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if shutErr := srv.Shutdown(stopCtx); shutErr != nil && err == nil {
			err = shutErr
		}
	}
	if stopErr := ib.Stop(stopCtx); stopErr != nil && err == nil {
		err = stopErr
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

func newServer(addr string, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
}

// basicAuth guards h with user admin and password, when a password is set.
func basicAuth(password string, h http.Handler) http.Handler {
	if password == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user+"\x00"+pass), []byte("admin\x00"+password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="cakemail-inbox"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// stoppedEarly treats a signal during start-up as a clean stop.
func stoppedEarly(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
