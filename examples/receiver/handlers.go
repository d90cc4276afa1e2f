package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// This file is the part to replace with your own logic.

// emailData is the part of an email event's data this receiver reads.
type emailData struct {
	Email     string `json:"email"`
	ContactID any    `json:"contact_id"`
}

// newRouter routes events to the handlers. Each runs on a River worker after
// the delivery was acknowledged; an error makes River retry it later.
func newRouter(logger *slog.Logger) *webhooks.Router {
	r := webhooks.NewRouter()
	r.ErrorLog = logger
	r.On(webhooks.EventEmailOpened, webhooks.HandleData(engagement(logger)))
	r.On(webhooks.EventEmailClicked, webhooks.HandleData(engagement(logger)))
	for _, t := range []webhooks.EventType{webhooks.EventEmailBounced, webhooks.EventEmailReportedAsSpam,
		webhooks.EventEmailUnsubscribed, webhooks.EventContactUnsubscribed} {
		r.On(t, webhooks.HandleData(stopMailing(logger)))
	}
	r.OnUnhandled(recordEvent)
	return r
}

func engagement(logger *slog.Logger) func(context.Context, *webhooks.Event, emailData) error {
	return func(ctx context.Context, e *webhooks.Event, d emailData) error {
		logger.DebugContext(ctx, "engagement", "event", e.Type, "contact_id", d.ContactID)
		return recordEvent(ctx, e)
	}
}

func stopMailing(logger *slog.Logger) func(context.Context, *webhooks.Event, emailData) error {
	return func(ctx context.Context, e *webhooks.Event, d emailData) error {
		logger.InfoContext(ctx, "stop mailing", "event", e.Type, "contact_id", d.ContactID)
		return recordEvent(ctx, e)
	}
}

// processedEvents is the sample effect's table, created at start.
const processedEvents = `CREATE TABLE IF NOT EXISTS processed_events (
	body_sha256 TEXT NOT NULL, event_type TEXT NOT NULL, processed_at TIMESTAMPTZ NOT NULL)`

// recordEvent is the sample effect, written in the transaction that completes
// the job: write yours through inbox.DeliveryFromContext(ctx).Tx the same way,
// and a crash can neither lose them nor apply them twice.
func recordEvent(ctx context.Context, e *webhooks.Event) error {
	d, ok := inbox.DeliveryFromContext(ctx)
	if !ok {
		return errors.New("recordEvent runs only on the delivery worker")
	}
	_, err := d.Tx.Exec(ctx, `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, $2, $3)`,
		d.BodySHA256, string(e.Type), time.Now().UTC())
	return err
}
