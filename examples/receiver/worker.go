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
// with the job's completion: both happen, or neither does.
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

// storeTx adapts a store transaction to Tx.
type storeTx[TTx any] struct {
	db *store[TTx]
	tx TTx
}

func (t storeTx[TTx]) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return t.db.exec(ctx, t.tx, query, args...)
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
	tx, err := w.db.begin(ctx)
	if err != nil {
		return err
	}
	defer w.db.rollback(ctx, tx) //nolint:errcheck // a no-op after commit

	// Lock the job row and check it is still this attempt's, so two
	// processes can never both commit an effect for one delivery.
	n, err := w.db.exec(ctx, tx, `UPDATE river_job SET state = state
		WHERE id = $1 AND state = 'running' AND attempt = $2`, job.ID, job.Attempt)
	if err != nil {
		return err
	}
	if n != 1 {
		return errNotOwner
	}

	ctx = context.WithValue(ctx, deliveryKey{}, &Delivery{
		Tx:         storeTx[TTx]{db: w.db, tx: tx},
		BodySHA256: job.Args.BodySHA256,
		Attempt:    job.Attempt,
	})
	if err := w.router.Dispatch(ctx, event); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[riverdriver.Driver[TTx]](ctx, tx, job); err != nil {
		return err
	}
	return w.db.commit(ctx, tx)
}

// Timeout bounds one handler run; River retries a job that overruns it.
func (w *deliveryWorker[TTx]) Timeout(*river.Job[deliveryArgs]) time.Duration { return jobTimeout }
