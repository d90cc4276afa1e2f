// Command receiver is a Cakemail webhook receiver shaped for production: copy it
// into your service and replace handle with your own logic.
//
// It verifies every delivery, answers within milliseconds and hands the work to a
// bounded in-process queue (Cakemail wants an answer within 5 seconds), answers 503
// when the queue is full so that Cakemail retries instead of losing the event, and
// acknowledges duplicate deliveries without processing them twice.
//
// Configuration comes from the environment:
//
//	CAKEMAIL_WEBHOOK_SECRET  the webhook's signing secret; several, comma-separated, while rotating
//	PORT                     where to listen (default 8080)
//
// Routes: POST /webhooks/cakemail and GET /healthz. SIGINT or SIGTERM stops it
// gracefully: no new deliveries are accepted and the queue is drained.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
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

// run serves until ctx is done, then shuts down and drains the queue.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	secrets := splitSecrets(getenv("CAKEMAIL_WEBHOOK_SECRET"))
	if len(secrets) == 0 {
		return errors.New("CAKEMAIL_WEBHOOK_SECRET is not set")
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	verifier, err := webhooks.NewVerifier(secrets)
	if err != nil {
		return err
	}
	rcv := newReceiver(Config{}, logger, handle)
	rcv.Start()

	srv := &http.Server{
		Addr:              net.JoinHostPort("", port),
		Handler:           rcv.Routes(verifier),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
	}
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", srv.Addr)

	select {
	case err := <-listenErr:
		rcv.Drain()
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining the queue")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	rcv.Drain()
	logger.Info("stopped")
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

// emailData is the part of an email event's data this receiver reads.
type emailData struct {
	Email     string `json:"email"`
	ContactID any    `json:"contact_id"`
}

// handle is the business logic: replace it with yours. It runs on a worker, after
// the delivery was acknowledged, so it may take its time; an error is logged,
// not retried, because Cakemail already has its 2xx.
func handle(ctx context.Context, event *webhooks.Event) error {
	switch event.Type {
	case webhooks.EventEmailOpened, webhooks.EventEmailClicked:
		var d emailData
		if err := event.DecodeData(&d); err != nil {
			return err
		}
		slog.InfoContext(ctx, "engagement", "event", event.Type, "contact_id", d.ContactID)
	case webhooks.EventEmailBounced, webhooks.EventEmailReportedAsSpam,
		webhooks.EventEmailUnsubscribed, webhooks.EventContactUnsubscribed:
		var d emailData
		if err := event.DecodeData(&d); err != nil {
			return err
		}
		slog.InfoContext(ctx, "stop mailing", "event", event.Type, "contact_id", d.ContactID)
	default:
		slog.DebugContext(ctx, "ignored", "event", event.Type)
	}
	return nil
}
