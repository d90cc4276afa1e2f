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

// The sample effects, in two tables the inbox creates at start:
//   - contacts: whether each contact may be mailed, as its newest event says;
//   - events: one row per delivery and how many times its handler ran, so a
//     replay (cakemail-inbox replay) shows as a second run, never a second row.
const (
	contactsTable = `CREATE TABLE IF NOT EXISTS contacts (
	contact_id TEXT PRIMARY KEY, mailable BOOLEAN NOT NULL, updated_at BIGINT NOT NULL)`
	eventsTable = `CREATE TABLE IF NOT EXISTS events (
	body_sha256 TEXT PRIMARY KEY, event_type TEXT NOT NULL, processed_at TIMESTAMPTZ NOT NULL, runs INTEGER NOT NULL)`
)

// inboxOptions are the inbox's settings these handlers need: their tables,
// and the order key that lets a contact's newest event win.
func inboxOptions() []inbox.Option {
	return []inbox.Option{inbox.WithDDL(contactsTable, eventsTable), inbox.WithOrderKey(contactKey)}
}

// mailableAfter is what each event says of its contact: may we mail them?
var mailableAfter = map[webhooks.EventType]bool{
	webhooks.EventContactAdded:        true,
	webhooks.EventEmailBounced:        false,
	webhooks.EventEmailReportedAsSpam: false,
	webhooks.EventEmailUnsubscribed:   false,
	webhooks.EventContactUnsubscribed: false,
}

// contactKey keys the events that set a contact's state by the contact:
// Cakemail does not deliver in order, and a late Contact.Added must never
// make an unsubscribed contact mailable again. Opens and clicks are counted,
// not state, so they are never held back.
func contactKey(e *webhooks.Event) (string, bool) {
	if _, state := mailableAfter[e.Type]; !state {
		return "", false
	}
	var d webhooks.EmailData
	if err := e.DecodeData(&d); err != nil || d.ContactID == "" {
		return "", false
	}
	return "contact:" + d.ContactID, true
}

// newRouter routes events to the handlers. Each runs on a River worker after
// the delivery was acknowledged; an error makes River retry it later.
func newRouter(logger *slog.Logger) *webhooks.Router {
	r := webhooks.NewRouter()
	r.ErrorLog = logger
	r.On(webhooks.EventEmailOpened, webhooks.HandleData(engagement(logger)))
	r.On(webhooks.EventEmailClicked, webhooks.HandleData(engagement(logger)))
	for t, mailable := range mailableAfter {
		r.On(t, webhooks.HandleData(setMailable(logger, mailable)))
	}
	r.OnUnhandled(recordEvent)
	return r
}

func engagement(logger *slog.Logger) func(context.Context, *webhooks.Event, webhooks.EmailData) error {
	return func(ctx context.Context, e *webhooks.Event, d webhooks.EmailData) error {
		logger.DebugContext(ctx, "engagement", "event", e.Type, "contact_id", d.ContactID)
		return recordEvent(ctx, e)
	}
}

// setMailable records what the event says of its contact. The order key has
// already skipped the event if a newer one for the contact was applied.
func setMailable(logger *slog.Logger, mailable bool) func(context.Context, *webhooks.Event, webhooks.EmailData) error {
	return func(ctx context.Context, e *webhooks.Event, d webhooks.EmailData) error {
		logger.InfoContext(ctx, "contact state", "event", e.Type, "contact_id", d.ContactID, "mailable", mailable)
		if d.ContactID != "" {
			del, _ := inbox.DeliveryFromContext(ctx)
			if _, err := del.Tx.Exec(ctx, `INSERT INTO contacts (contact_id, mailable, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (contact_id) DO UPDATE SET mailable = excluded.mailable, updated_at = excluded.updated_at`,
				d.ContactID, mailable, e.CreatedAt.Unix()); err != nil {
				return err
			}
		}
		return recordEvent(ctx, e)
	}
}

// recordEvent is the sample log, written in the transaction that completes
// the job: write your effects through inbox.DeliveryFromContext(ctx).Tx the
// same way, and a crash can neither lose them nor apply them twice.
func recordEvent(ctx context.Context, e *webhooks.Event) error {
	d, ok := inbox.DeliveryFromContext(ctx)
	if !ok {
		return errors.New("recordEvent runs only on the delivery worker")
	}
	_, err := d.Tx.Exec(ctx, `INSERT INTO events (body_sha256, event_type, processed_at, runs) VALUES ($1, $2, $3, 1)
		ON CONFLICT (body_sha256) DO UPDATE SET runs = events.runs + 1, processed_at = excluded.processed_at`,
		d.BodySHA256, string(e.Type), time.Now().UTC())
	return err
}
