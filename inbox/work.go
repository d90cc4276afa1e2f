package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	routers  map[string]*webhooks.Router // by subscriber name
	dialect  dialect[TTx]
	log      *slog.Logger
	timeout  time.Duration
	batches  *batcher[TTx]
	ordering *ordering // nil without WithOrderKey
	metrics  *metrics
	working  inFlight
}

// NewWorker returns a worker that dispatches deliveries to router, for a
// River client whose transactions are TTx (pgx.Tx with riverpgxv5, *sql.Tx
// with riversqlite); build the client's configuration with RiverConfig. Of
// the options, WithLogger, WithJobTimeout, WithTxTimeout, WithMaxBatch,
// WithDuplicateWindow, WithSubscriber and WithOrderKey apply; it panics on a
// nil router, another driver, or an option that is invalid or does not
// apply.
func NewWorker[TTx any](router *webhooks.Router, opts ...Option) *Worker[TTx] {
	cfg := mustConfig(forWorker, opts)
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
	routers := map[string]*webhooks.Router{DefaultSubscriber: router}
	for _, s := range cfg.subscribers {
		routers[s.name] = s.router
	}
	var o *ordering
	if cfg.orderKey != nil {
		o = &ordering{key: cfg.orderKey, window: cfg.duplicateWindow, log: cfg.logger}
	}
	return &Worker[TTx]{
		ordering: o,
		routers:  routers,
		dialect:  d,
		log:      cfg.logger,
		timeout:  cfg.jobTimeout,
		batches:  newBatcher[TTx](cfg.maxBatch, cfg.txTimeout, d.tuning()),
		metrics:  m,
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
	stale, err := w.work(ctx, job)
	w.metrics.jobDone(start, job, stale, err)
	return err
}

// work runs the job, and reports whether it completed as stale: a later
// event for its order key had been applied.
func (w *Worker[TTx]) work(ctx context.Context, job *river.Job[DeliveryArgs]) (stale bool, err error) {
	subscriber := job.Args.subscriber()
	router, ok := w.routers[subscriber]
	if !ok {
		// Never another subscriber's router: its effects are not these.
		err := fmt.Errorf("inbox: no subscriber %q in this process's configuration (removed, or an older configuration): retry it once an inbox with it runs", subscriber)
		w.log.ErrorContext(ctx, "delivery's subscriber is not configured: sent to the dead letters",
			"subscriber", subscriber, "job_id", job.ID, "attempt", job.Attempt)
		return false, river.JobCancel(err)
	}
	event, err := webhooks.ParseEvent(job.Args.Body)
	if err != nil {
		w.log.ErrorContext(ctx, "delivery does not parse: sent to the dead letters",
			"subscriber", subscriber, "job_id", job.ID, "attempt", job.Attempt, "err", err)
		return false, river.JobCancel(err)
	}
	// The Tx cancels the handler's context if the handler keeps it too long.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tx := newJobTx(w, job, cancel)
	key, keyed, err := w.ordering.keyOf(event)
	if err != nil {
		return false, w.failed(ctx, job, event, tx.end(err))
	}
	if keyed {
		// A stale event's job completes, its handler unrun.
		if applies, err := w.applyInOrder(ctx, tx, job, key, event); err != nil || !applies {
			if err := tx.end(err); err != nil {
				return false, w.failed(ctx, job, event, err)
			}
			return true, nil
		}
	}
	ctx = context.WithValue(ctx, deliveryKey{}, &Delivery{
		Tx:         tx,
		BodySHA256: job.Args.BodySHA256,
		Attempt:    job.Attempt,
		JobID:      job.ID,
		Subscriber: subscriber,
	})
	if err := tx.end(router.Dispatch(ctx, event)); err != nil {
		return false, w.failed(ctx, job, event, err)
	}
	return false, nil
}

// contentionPause is about how long a delivery that lost a race for a lock
// waits before it runs again.
const contentionPause = 100 * time.Millisecond

// failed logs a failed attempt where an operator sees it, and decides
// whether River should retry it.
func (w *Worker[TTx]) failed(ctx context.Context, job *river.Job[DeliveryArgs], event *webhooks.Event, err error) error {
	attrs := []any{"event", event.Type, "subscriber", job.Args.subscriber(), "job_id", job.ID,
		"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err}
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
	case w.dialect.contention(err):
		// Another transaction held a row this delivery needed: run it
		// again shortly, at no attempt's cost.
		w.log.DebugContext(ctx, "delivery lost a race for a lock: running it again shortly", attrs...)
		return river.JobSnooze(contentionPause + rand.N(contentionPause))
	case errors.Is(err, errNotOwner):
		w.log.WarnContext(ctx, "delivery was handed to another process while it ran: its effects were rolled back", attrs...)
	default:
		w.log.WarnContext(ctx, "delivery handler failed: River retries it", attrs...)
	}
	return err
}
