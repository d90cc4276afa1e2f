package inbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
)

// DeliveryArgs is the River job for one verified delivery.
type DeliveryArgs struct {
	// BodySHA256 identifies the delivery: Cakemail's carry no id, so the same
	// signed body again is the same delivery. It alone makes the job unique.
	BodySHA256 string `json:"body_sha256" river:"unique"`
	// EventType is the event's canonical type, for an operator to find
	// deliveries by; the worker dispatches what the body says.
	EventType webhooks.EventType `json:"event_type"`
	// Body is the body byte for byte as it was verified. It is base64 in the
	// job's JSON, so no database can re-space, re-escape or refuse it.
	Body []byte `json:"body"`
}

// NewDeliveryArgs returns the job for a verified body and its parsed event.
func NewDeliveryArgs(body []byte, event *webhooks.Event) DeliveryArgs {
	sum := sha256.Sum256(body)
	args := DeliveryArgs{BodySHA256: hex.EncodeToString(sum[:]), Body: body}
	if event != nil {
		args.EventType = event.Type
	}
	return args
}

// Kind names the job in River's table.
func (DeliveryArgs) Kind() string { return "cakemail_delivery" }

// InsertOpts makes a delivery unique by its body for as long as River keeps
// the job, dead letters (discarded, cancelled) included, so an operator's
// dead letter is not silently replaced by a fresh copy.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
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
// first Exec, so do slow work (calls to other services) before writing, not
// after: while a handler holds it, other deliveries' effects wait. Like any
// database transaction, it is for one goroutine at a time.
type Tx interface {
	// Exec runs a statement with $1-style placeholders and reports the rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Delivery is what a handler learns about the delivery beside its event.
type Delivery struct {
	Tx         Tx     // where the handler's effects go
	BodySHA256 string // hex SHA-256 of the body as received
	Attempt    int    // 1 on the first run, more on retries
	JobID      int64  // the River job's id
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery a handler is running for.
func DeliveryFromContext(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// DriverTx returns the delivery's transaction in the River driver's own type
// (pgx.Tx for riverpgxv5, *sql.Tx for riversqlite), for effects written with
// pgx, sqlc or database/sql code. It begins the transaction if no Exec has.
func DriverTx[TTx any](ctx context.Context) (TTx, error) {
	var zero TTx
	d, ok := DeliveryFromContext(ctx)
	if !ok {
		return zero, errors.New("inbox: DriverTx called outside a delivery's handler")
	}
	t, ok := d.Tx.(*jobTx[TTx])
	if !ok {
		return zero, fmt.Errorf("inbox: DriverTx[%T] does not match the River driver's transaction type", zero)
	}
	return t.driverTx(ctx)
}

// Worker runs deliveries through a webhooks.Router. Register it on a River
// client's workers with river.AddWorker; Open does that for its own client.
// Effects of many deliveries commit in one transaction, each behind a
// savepoint, so one failing handler never rolls back another's effects.
type Worker[TTx any] struct {
	river.WorkerDefaults[DeliveryArgs]
	router  *webhooks.Router
	log     *slog.Logger
	timeout time.Duration
	batches *batcher[TTx]
	metrics *metrics
	working inFlight
}

// NewWorker returns a worker that dispatches deliveries to router. Of the
// options, WithLogger, WithJobTimeout and WithMaxBatch apply; it panics on a
// nil router or an invalid option.
func NewWorker[TTx any](router *webhooks.Router, opts ...Option) *Worker[TTx] {
	cfg := mustConfig(opts)
	return newWorker[TTx](router, cfg, nil)
}

func newWorker[TTx any](router *webhooks.Router, cfg *config, m *metrics) *Worker[TTx] {
	if router == nil {
		panic("inbox: NewWorker with a nil router")
	}
	return &Worker[TTx]{
		router:  router,
		log:     cfg.logger,
		timeout: cfg.jobTimeout,
		batches: newBatcher[TTx](cfg.maxBatch),
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
	tx := &jobTx[TTx]{batches: w.batches, job: job}
	defer tx.abandon()
	ctx = context.WithValue(ctx, deliveryKey{}, &Delivery{
		Tx:         tx,
		BodySHA256: job.Args.BodySHA256,
		Attempt:    job.Attempt,
		JobID:      job.ID,
	})
	if err := w.router.Dispatch(ctx, event); err != nil {
		return w.failed(ctx, job, event, err)
	}
	if err := tx.complete(ctx); err != nil {
		return w.failed(ctx, job, event, err)
	}
	return nil
}

// failed logs a failed attempt where an operator sees it, and decides
// whether River should retry it.
func (w *Worker[TTx]) failed(ctx context.Context, job *river.Job[DeliveryArgs], event *webhooks.Event, err error) error {
	attrs := []any{"event", event.Type, "job_id", job.ID, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err}
	var stack interface{ Stack() []byte }
	switch {
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

// errNotOwner means the job is no longer this attempt's: it was handed to
// another process while this one ran, so this one must not apply anything.
var errNotOwner = errors.New("job was handed to another attempt")

// jobTx is a handler's Tx: a savepoint in the batch transaction that its
// turn is granted in. It begins at the first statement, so a handler's slow
// work before it writes holds no turn.
type jobTx[TTx any] struct {
	batches *batcher[TTx]
	job     *river.Job[DeliveryArgs]
	turn    *turn[TTx]
	opened  bool // the turn's savepoint is open
	tx      TTx
	failed  error // the transaction can no longer be used
}

func (t *jobTx[TTx]) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if t.turn == nil && t.failed == nil {
		// The turn opens with this first statement, in one round trip.
		n, err := t.open(ctx, &statement{query, args})
		if err != nil {
			t.failed = err
		}
		return n, err
	}
	if t.failed != nil {
		return 0, t.failed
	}
	n, err := execTx(ctx, t.tx, query, args...)
	if err != nil {
		// Postgres refuses every later statement of a failed transaction:
		// the handler may still return nil, but this delivery's effects must
		// not complete it.
		t.failed = err
	}
	return n, err
}

// driverTx opens the turn, if no statement has, and returns its transaction.
func (t *jobTx[TTx]) driverTx(ctx context.Context) (TTx, error) {
	if t.turn == nil && t.failed == nil {
		if _, err := t.open(ctx, nil); err != nil {
			t.failed = err
		}
	}
	return t.tx, t.failed
}

// open waits for a turn in a batch, opens this job's savepoint, marks the job
// completed if it is still this attempt's, and runs first, the handler's
// first statement, reporting the rows that one changed.
func (t *jobTx[TTx]) open(ctx context.Context, first *statement) (int64, error) {
	client, err := river.ClientFromContextSafely[TTx](ctx)
	if err != nil {
		return 0, fmt.Errorf("inbox: the delivery's transaction is only available on a River worker: %w", err)
	}
	driver := client.Driver()
	if t.turn, err = t.batches.join(ctx, driver); err != nil {
		return 0, err
	}
	t.tx = driver.UnwrapTx(t.turn.tx)
	completion := statement{completeIfOwner(client.Schema(), driver.DatabaseName()), []any{t.job.ID, t.job.Attempt}}
	completed, n, err := openTurn(ctx, t.tx, *t.turn.savepointOpen, completion, first)
	*t.turn.savepointOpen = false
	t.opened = true // if the savepoint did not open, undoing it fails and the batch is given up
	switch {
	case err != nil:
		return 0, err
	case completed != 1:
		return 0, errNotOwner
	}
	return n, nil
}

// complete keeps the delivery's effects and its completion in the batch and
// waits for the batch to commit. A handler that wrote nothing has no effect
// to keep together with its completion: River's own completer records it,
// in batches of its own.
func (t *jobTx[TTx]) complete(ctx context.Context) error {
	if t.failed != nil {
		return t.failed // even if the handler ignored it: its effects are not all there
	}
	if t.turn == nil {
		return nil
	}
	turn := t.turn
	t.turn = nil
	*turn.savepointOpen = true // the next turn, or the commit, releases it
	turn.release(true, false)
	return turn.batch.wait()
}

// abandon rolls back an unfinished savepoint and ends the turn.
func (t *jobTx[TTx]) abandon() {
	if t.turn == nil {
		return
	}
	broken := !t.opened || undoTurn(context.Background(), t.tx) != nil
	t.turn.release(false, broken)
	t.turn = nil
}

// completeIfOwner marks the job completed, first in its savepoint, if it is
// still the running attempt's: the row stays locked until the batch commits,
// so two processes can never both commit an effect for one delivery, and a
// failing handler's rollback to the savepoint undoes the completion with its
// effects. It is River's completion in one small statement: on SQLite,
// River's own takes three that are each parsed anew.
func completeIfOwner(schema, databaseName string) string {
	table, now := "river_job", "now()"
	if schema != "" {
		table = schema + ".river_job"
	}
	if databaseName == riverdriver.DatabaseNameSQLite {
		now = "datetime('now', 'subsec')"
	}
	return `UPDATE ` + table + ` SET state = 'completed', finalized_at = ` + now +
		` WHERE id = $1 AND state = 'running' AND attempt = $2`
}
