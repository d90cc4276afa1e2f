package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// Cakemail does not deliver in order: a retry, a delivery that failed once or
// an operator's replay brings an older event after a newer one. With an order
// key, the inbox keeps, per subscriber and key, the creation time of the
// newest event applied, in a row that the delivery's own transaction checks
// and moves forward before the handler runs: an older event's job completes
// without running its handler. The row is written in the job's savepoint, so
// a handler that fails takes its step back with it, and the row stays locked
// until the batch commits, so two replicas working one key take turns.

// orderTable holds, per subscriber and key, the newest applied event's time.
const orderTable = `CREATE TABLE IF NOT EXISTS cakemail_inbox_order (
	subscriber TEXT NOT NULL,
	order_key TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (subscriber, order_key)
)`

// orderTableIndex serves the pruning.
const orderTableIndex = `CREATE INDEX IF NOT EXISTS cakemail_inbox_order_created_at ON cakemail_inbox_order (created_at)`

// claimOrder moves the key's record to the event's time unless a later event
// was applied: it changes one row when the event may be applied, none when it
// is stale. On Postgres the conflicting row is locked whether or not it
// changes, so a concurrent claim on the key waits for this batch's commit,
// then sees its outcome. Equal times both apply, in the order they run.
const claimOrder = `INSERT INTO cakemail_inbox_order (subscriber, order_key, created_at) VALUES ($1, $2, $3)
	ON CONFLICT (subscriber, order_key) DO UPDATE SET created_at = excluded.created_at
	WHERE cakemail_inbox_order.created_at <= excluded.created_at`

// staleMark is the job metadata key that tells an operator (and
// cakemail-inbox status) that the job completed without running, as stale.
const staleMark = sqldb.StaleMark

// WithOrderKey makes the newest event win for each key that key returns: an
// event whose key function returns (k, true) runs its handler only if no
// event for k with a later CreatedAt has already been applied; otherwise its
// job completes without running it, counted as
// cakemail_inbox_jobs_total{outcome="stale"} and logged at DEBUG. Use it for
// state (a contact's subscription, an address's status), keyed by what the
// state belongs to; not for counts (opens, clicks), where every event counts.
//
// Events with the same CreatedAt (created_on has whole seconds) are applied
// in the order they are processed; an event without a time, or whose key
// function returns false or an empty key, is never held back. Each
// subscriber keeps its own record. The check and the record are in the
// delivery's transaction, before the handler runs: a keyed handler holds its
// turn from its start, not from its first write.
//
// The record is one row per subscriber and key, kept while an older event
// for the key could still arrive or run again: for keys whose newest event
// is more recent than the oldest delivery River still keeps (dead letters
// included), less the duplicate window. It applies to Open and NewWorker.
func WithOrderKey(key func(e *webhooks.Event) (string, bool)) Option {
	return option("WithOrderKey", forWorker, func(c *config) error {
		if key == nil {
			return fmt.Errorf("inbox: WithOrderKey(nil): want a key function")
		}
		c.orderKey = key
		return nil
	})
}

// ordering is a worker's order keys: the key function, and the upkeep of
// the record.
type ordering struct {
	key    func(e *webhooks.Event) (string, bool)
	window time.Duration
	log    *slog.Logger

	ready      atomic.Bool // the table is known to exist
	readyMu    sync.Mutex
	lastPruned atomic.Int64 // Unix nanoseconds
}

// keyOf is the event's order key, or false when it is not held back. A key
// function that panics is a handler bug: the job fails, as a handler's would.
func (o *ordering) keyOf(e *webhooks.Event) (key string, ok bool, err error) {
	if o == nil || o.key == nil || e.CreatedAt.IsZero() {
		return "", false, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = &keyPanic{value: p, stack: debug.Stack()}
		}
	}()
	key, ok = o.key(e)
	return key, ok && key != "", nil
}

// keyPanic is a key function's panic, with its stack for the log.
type keyPanic struct {
	value any
	stack []byte
}

func (p *keyPanic) Error() string {
	return fmt.Sprintf("inbox: the order key function panicked: %v", p.value)
}
func (p *keyPanic) Stack() []byte { return p.stack }

// ensureTable creates the record's table where Open did not (a service's
// own River client), once.
func (o *ordering) ensureTable(ctx context.Context, exec riverdriver.Executor, d sqldb.Dialect) error {
	if o.ready.Load() {
		return nil
	}
	o.readyMu.Lock()
	defer o.readyMu.Unlock()
	if o.ready.Load() {
		return nil
	}
	tx, err := exec.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	stmts := []string{orderTable, orderTableIndex}
	if lock := d.MigrationLock(); lock != "" {
		// Replicas starting together must not create the table at once.
		stmts = append([]string{lock}, stmts...)
	}
	for _, s := range stmts {
		if err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("inbox: creating the order keys' table: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	o.ready.Store(true)
	return nil
}

// pruneEvery is how often a worker forgets the records no event can reach.
const pruneEvery = time.Hour

// maybePrune forgets, at most every pruneEvery, the keys whose newest
// applied event is older than any event that can still run: the oldest
// event of the deliveries River keeps, in any state (a completed one can be
// replayed, a dead letter retried), and the oldest a new delivery can carry,
// the duplicate window ago.
func (o *ordering) maybePrune(exec riverdriver.Executor, d sqldb.Dialect) {
	now := time.Now()
	last := o.lastPruned.Load()
	if now.UnixNano()-last < int64(pruneEvery) || !o.lastPruned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pruneOrder(ctx, exec, d, o.window, now); err != nil {
			o.log.Warn("inbox: pruning the order keys' record", "err", err)
		}
	}()
}

// pruneOrder deletes the records older than any event that can still run.
func pruneOrder(ctx context.Context, exec riverdriver.Executor, d sqldb.Dialect, window time.Duration, now time.Time) error {
	var oldest *int64
	// A job from before event times were kept in args is bounded by its
	// insertion, less the window the acceptor allows.
	err := exec.QueryRow(ctx, `SELECT min(coalesce(CAST(`+d.ArgText("event_created_at")+` AS BIGINT), `+
		d.EpochSeconds("created_at")+` - $2)) FROM river_job WHERE kind = $1`,
		DeliveryArgs{}.Kind(), int64(window.Seconds())).Scan(&oldest)
	if err != nil {
		return err
	}
	bound := now.Add(-window).Unix()
	if oldest != nil && *oldest < bound {
		bound = *oldest
	}
	// A second's margin: created_on has whole seconds, the record nanoseconds.
	return exec.Exec(ctx, `DELETE FROM cakemail_inbox_order WHERE created_at < $1`,
		time.Unix(bound-1, 0).UnixNano())
}

// applyInOrder claims the event's place for its key in the job's
// transaction. It reports false, having marked the job stale, when a later
// event for the key was already applied: the job then completes without
// running the handler.
func (w *Worker[TTx]) applyInOrder(ctx context.Context, tx *jobTx[TTx], job *river.Job[DeliveryArgs], key string, event *webhooks.Event) (bool, error) {
	client, err := river.ClientFromContextSafely[TTx](ctx)
	if err != nil {
		return false, fmt.Errorf("inbox: order keys need a River worker: %w", err)
	}
	exec := client.Driver().GetExecutor()
	if err := w.ordering.ensureTable(ctx, exec, w.dialect); err != nil {
		return false, err
	}
	w.ordering.maybePrune(exec, w.dialect)
	claimed, err := tx.Exec(ctx, claimOrder, job.Args.subscriber(), key, event.CreatedAt.UnixNano())
	if err != nil || claimed == 1 {
		return claimed == 1, err
	}
	if _, err := tx.Exec(ctx, `UPDATE `+riverJobTable(client.Schema())+` SET metadata = `+
		w.dialect.MetadataWithTrue(staleMark)+` WHERE id = $1`, job.ID); err != nil {
		return false, err
	}
	if w.log.Enabled(ctx, slog.LevelDebug) {
		applied, _ := tx.queryInt(ctx, `SELECT created_at FROM cakemail_inbox_order WHERE subscriber = $1 AND order_key = $2`,
			job.Args.subscriber(), key)
		w.log.DebugContext(ctx, "stale event: a later one for its key was applied; completed without running the handler",
			"subscriber", job.Args.subscriber(), "order_key", key, "event", event.Type, "job_id", job.ID,
			"created_at", event.CreatedAt.UTC(), "applied_created_at", time.Unix(0, applied).UTC())
	}
	return false, nil
}

// riverJobTable is River's job table in its schema.
func riverJobTable(schema string) string {
	if schema == "" {
		return "river_job"
	}
	return schema + ".river_job"
}
