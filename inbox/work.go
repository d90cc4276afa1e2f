package inbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks"
)

// Worker runs deliveries through a webhooks.Router. Register it on a River
// client's workers with river.AddWorker; Open does that for its own client.
// Effects of many deliveries commit in one transaction, each behind a
// savepoint, so one failing handler never rolls back another's effects.
type Worker[TTx any] struct {
	river.WorkerDefaults[DeliveryArgs]
	router  *webhooks.Router
	dialect dialect[TTx]
	log     *slog.Logger
	timeout time.Duration
	batches *batcher[TTx]
	metrics *metrics
	working inFlight
}

// NewWorker returns a worker that dispatches deliveries to router, for a
// River client whose transactions are TTx (pgx.Tx with riverpgxv5, *sql.Tx
// with riversqlite). Of the options, WithLogger, WithJobTimeout,
// WithTxTimeout and WithMaxBatch apply; it panics on a nil router, another
// driver or an invalid option.
func NewWorker[TTx any](router *webhooks.Router, opts ...Option) *Worker[TTx] {
	cfg := mustConfig(opts)
	d, err := dialectFor[TTx]()
	if err != nil {
		panic(err)
	}
	return newWorker(router, d, cfg, nil)
}

func newWorker[TTx any](router *webhooks.Router, d dialect[TTx], cfg *config, m *metrics) *Worker[TTx] {
	if router == nil {
		panic("inbox: NewWorker with a nil router")
	}
	return &Worker[TTx]{
		router:  router,
		dialect: d,
		log:     cfg.logger,
		timeout: cfg.jobTimeout,
		batches: newBatcher[TTx](cfg.maxBatch, cfg.txTimeoutOrDefault(), d.tuning()),
		metrics: m,
	}
}

// Timeout bounds one handler run; River retries a job that overruns it.
func (w *Worker[TTx]) Timeout(*river.Job[DeliveryArgs]) time.Duration { return w.timeout }

// Work dispatches the delivery's event. A handler error rolls its effects
// back and River retries the job with backoff; an error retrying cannot fix
// (an event that does not parse, data that does not decode) sends the job to
// the dead letters at once, for an operator to retry after the fix.
func (w *Worker[TTx]) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	start := time.Now()
	w.working.add(job.ID)
	defer w.working.done(job.ID)
	err := w.work(ctx, job)
	w.metrics.jobDone(start, job, err)
	return err
}

func (w *Worker[TTx]) work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	event, err := webhooks.ParseEvent(job.Args.Body)
	if err != nil {
		w.log.ErrorContext(ctx, "delivery does not parse: sent to the dead letters",
			"job_id", job.ID, "attempt", job.Attempt, "err", err)
		return river.JobCancel(err)
	}
	// The Tx cancels the handler's context if the handler keeps it too long.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tx := newJobTx(w, job, cancel)
	ctx = context.WithValue(ctx, deliveryKey{}, &Delivery{
		Tx:         tx,
		BodySHA256: job.Args.BodySHA256,
		Attempt:    job.Attempt,
		JobID:      job.ID,
	})
	if err := tx.end(w.router.Dispatch(ctx, event)); err != nil {
		return w.failed(ctx, job, event, err)
	}
	return nil
}

// failed logs a failed attempt where an operator sees it, and decides
// whether River should retry it.
func (w *Worker[TTx]) failed(ctx context.Context, job *river.Job[DeliveryArgs], event *webhooks.Event, err error) error {
	attrs := []any{"event", event.Type, "job_id", job.ID, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err}
	var stack interface{ Stack() []byte }
	var held *heldError
	switch {
	case errors.As(err, &held):
		// Logged when the turn was taken back, which may be long before the
		// handler returns.
	case errors.As(err, &stack):
		w.log.ErrorContext(ctx, "delivery handler panicked", append(attrs, "stack", string(stack.Stack()))...)
	case errors.Is(err, webhooks.ErrInvalidEvent):
		w.log.ErrorContext(ctx, "delivery cannot be handled as sent: sent to the dead letters", attrs...)
		return river.JobCancel(err)
	case errors.Is(err, errNotOwner):
		w.log.WarnContext(ctx, "delivery was handed to another process while it ran: its effects were rolled back", attrs...)
	default:
		w.log.WarnContext(ctx, "delivery handler failed: River retries it", attrs...)
	}
	return err
}
