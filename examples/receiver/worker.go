package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
)

// deliveryArgs is the River job for one verified delivery.
type deliveryArgs struct {
	// BodySHA256 identifies the delivery: Cakemail's carry no id, so the same
	// signed body again is the same delivery. It alone makes the job unique.
	BodySHA256 string `json:"body_sha256" river:"unique"`
	// Body is the verified body. Postgres may re-space it (jsonb), which
	// changes nothing once parsed; BodySHA256 is of the bytes as received.
	Body json.RawMessage `json:"body"`
}

// Kind names the job in River's table.
func (deliveryArgs) Kind() string { return "cakemail_delivery" }

// InsertOpts makes a delivery unique by its body for as long as River keeps
// the job: pending, running, retrying, completed (CompletedJobRetentionPeriod)
// and also discarded or cancelled, so an operator's dead letter is not
// silently replaced by a fresh copy.
func (deliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: append(rivertype.UniqueOptsByStateDefault(),
				rivertype.JobStateDiscarded, rivertype.JobStateCancelled),
		},
	}
}

// Tx is the transaction a handler writes its effects in. It commits together
// with the job's completion: both happen, or neither does. It begins at the
// first Exec: do slow work before writing, not after. Like any database
// transaction, it is for one goroutine at a time.
type Tx interface {
	// Exec runs a statement with $1-style placeholders and reports the rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Delivery is what a handler learns about the delivery beside its event.
type Delivery struct {
	Tx         Tx     // where the handler's effects go
	BodySHA256 string // hex SHA-256 of the body as received
	Attempt    int    // 1 on the first run, more on retries
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery a handler is running for.
func DeliveryFromContext(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// lazyTx begins the transaction at its first statement, so a handler's slow
// work before it writes (a call to another service) holds no database lock:
// on SQLite, a held write lock would hold up every acknowledgement.
type lazyTx[TTx any] struct {
	db      *store[TTx]
	job     *river.Job[deliveryArgs]
	tx      TTx
	started bool
	slot    bool // holds one of db.writeSlots
}

func (t *lazyTx[TTx]) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.db.exec(ctx, t.tx, query, args...)
}

// begin starts the transaction and runs the store's ownership check.
func (t *lazyTx[TTx]) begin(ctx context.Context) error {
	if t.started {
		return nil
	}
	if t.db.writeSlots != nil && !t.slot {
		select {
		case t.db.writeSlots <- struct{}{}:
			t.slot = true
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tx, err := t.db.begin(ctx)
	if err != nil {
		return err
	}
	t.tx, t.started = tx, true
	if t.db.ownerCheck == "" {
		return nil
	}
	n, err := t.db.exec(ctx, tx, t.db.ownerCheck, t.job.ID, t.job.Attempt)
	if err != nil {
		return err
	}
	if n != 1 {
		return errNotOwner
	}
	return nil
}

func (t *lazyTx[TTx]) rollback(ctx context.Context) {
	if t.started {
		t.db.rollback(ctx, t.tx) //nolint:errcheck // a no-op after commit
	}
	if t.slot {
		<-t.db.writeSlots
	}
}

// errNotOwner means the job is no longer this attempt's: it was handed to
// another process while this one ran, so this one must not apply anything.
var errNotOwner = errors.New("job was reassigned to another attempt")

// deliveryWorker runs a delivery's handler and completes its job in the same
// transaction as the handler's effects.
type deliveryWorker[TTx any] struct {
	river.WorkerDefaults[deliveryArgs]
	db     *store[TTx]
	router *webhooks.Router
}

// Work dispatches the event. An error leaves the transaction rolled back and
// River retries the job with backoff; after MaxAttempts it is discarded and
// stays in river_job for an operator.
func (w *deliveryWorker[TTx]) Work(ctx context.Context, job *river.Job[deliveryArgs]) error {
	event, err := webhooks.ParseEvent(job.Args.Body)
	if err != nil {
		// It was verified and parsed once already; retrying cannot help.
		return river.JobCancel(fmt.Errorf("delivery no longer parses: %w", err))
	}
	tx := &lazyTx[TTx]{db: w.db, job: job}
	defer tx.rollback(context.WithoutCancel(ctx))
	ctx = context.WithValue(ctx, deliveryKey{}, &Delivery{
		Tx:         tx,
		BodySHA256: job.Args.BodySHA256,
		Attempt:    job.Attempt,
	})
	if err := w.router.Dispatch(ctx, event); err != nil {
		return err
	}
	if err := tx.begin(ctx); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[riverdriver.Driver[TTx]](ctx, tx.tx, job); err != nil {
		return err
	}
	return w.db.commit(ctx, tx.tx)
}

// Timeout bounds one handler run; River retries a job that overruns it.
func (w *deliveryWorker[TTx]) Timeout(*river.Job[deliveryArgs]) time.Duration { return jobTimeout }
