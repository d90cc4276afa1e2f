package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// errNotOwner means the job is no longer this attempt's: it was handed to
// another process while this one ran, so this one must not apply anything.
var errNotOwner = errors.New("job was handed to another attempt")

// ErrTxDone is returned by a delivery's Tx, and by the pgx.Tx DriverTx gives,
// once the Tx has ended: its handler returned, or kept it past the bound
// that WithTxTimeout sets.
var ErrTxDone = errors.New("inbox: the delivery's transaction has ended")

// errTxReturned is why a call fails once the handler has returned.
var errTxReturned = fmt.Errorf("%w: its handler returned", ErrTxDone)

// heldError is why a handler's turn was taken back: it kept the batch
// transaction longer than the bound after its first statement.
type heldError struct {
	held, bound time.Duration
}

func (e *heldError) Error() string {
	return fmt.Sprintf("%v: its handler kept it %s after its first statement, past the %s bound (WithTxTimeout), and its effects were rolled back",
		ErrTxDone, e.held.Round(time.Millisecond), e.bound)
}

func (e *heldError) Is(target error) bool { return target == ErrTxDone }

// jobTx is a handler's Tx: a savepoint in the batch transaction that its
// turn is granted in. It begins at the first statement, so a handler's slow
// work before it writes holds no turn.
//
// It ends when the handler returns, or when the handler has kept its turn
// longer than timeout: every later call fails at once and opens nothing, so
// no goroutine the handler left behind can hold a turn that nobody gives
// back. Calls from several goroutines run one at a time.
type jobTx[TTx any] struct {
	dialect dialect[TTx]
	batches *batcher[TTx]
	job     *river.Job[DeliveryArgs]
	log     *slog.Logger
	timeout time.Duration // how long the handler may keep its turn (WithTxTimeout)
	// stopHandler cancels the handler's context when its time is up.
	stopHandler context.CancelCauseFunc

	// closing is cancelled when the handler returns: a call still waiting
	// for a turn gives up. life is cancelled once the Tx has ended or its
	// time is up: a statement still running stops.
	closing  context.Context
	returned context.CancelCauseFunc
	life     context.Context
	kill     context.CancelCauseFunc
	expired  atomic.Pointer[heldError] // set when the turn's time was up

	// sem is held by the one call using the transaction; what follows is
	// read and written only with it held.
	sem     chan struct{}
	turn    *turn[TTx]
	timer   *time.Timer // takes the turn back once its time is up
	opened  bool        // the turn's savepoint is open
	tx      TTx
	failed  error          // the transaction can no longer be used
	ended   error          // why every later call fails
	results map[any]func() // the driver's results still open (pgx rows and batches), to close at the end
}

func newJobTx[TTx any](w *Worker[TTx], job *river.Job[DeliveryArgs], stopHandler context.CancelCauseFunc) *jobTx[TTx] {
	t := &jobTx[TTx]{
		dialect:     w.dialect,
		batches:     w.batches,
		job:         job,
		log:         w.log,
		timeout:     w.batches.turnTimeout,
		stopHandler: stopHandler,
		sem:         make(chan struct{}, 1),
	}
	t.closing, t.returned = context.WithCancelCause(context.Background())
	t.life, t.kill = context.WithCancelCause(context.Background())
	return t
}

func (t *jobTx[TTx]) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := t.acquire(ctx); err != nil {
		return 0, err
	}
	defer t.unlock()
	if t.failed != nil {
		return 0, t.failed
	}
	ctx, stop := t.bound(ctx)
	defer stop()
	if t.turn == nil {
		// The turn opens with this first statement, in one round trip.
		return t.open(ctx, &statement{query, args})
	}
	n, err := t.dialect.execTx(ctx, t.tx, query, args...)
	if err != nil {
		// Postgres refuses every later statement of a failed transaction:
		// the handler may still return nil, but this delivery's effects must
		// not complete it.
		t.failed = err
	}
	return n, err
}

// driverTx opens the turn, if no statement has, and returns its transaction
// as DriverTx hands it out.
func (t *jobTx[TTx]) driverTx(ctx context.Context) (TTx, error) {
	var zero TTx
	if err := t.acquire(ctx); err != nil {
		return zero, err
	}
	defer t.unlock()
	if t.failed != nil {
		return zero, t.failed
	}
	if t.turn == nil {
		ctx, stop := t.bound(ctx)
		defer stop()
		if _, err := t.open(ctx, nil); err != nil {
			return zero, err
		}
	}
	return guardDriverTx(t, t.tx), nil
}

// acquire waits until no other call uses the transaction, and fails at once
// once the Tx has ended.
func (t *jobTx[TTx]) acquire(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closing.Done():
		return context.Cause(t.closing)
	case <-t.life.Done():
		return context.Cause(t.life)
	}
	if err := t.endedErr(); err != nil {
		t.unlock()
		return err
	}
	return nil
}

func (t *jobTx[TTx]) unlock() { <-t.sem }

// endedErr is why calls fail now, or nil while the handler may use the Tx.
func (t *jobTx[TTx]) endedErr() error {
	switch {
	case t.ended != nil:
		return t.ended
	case t.life.Err() != nil:
		return context.Cause(t.life)
	case t.closing.Err() != nil:
		return context.Cause(t.closing)
	}
	return nil
}

// bound returns ctx, cancelled also when the Tx's life ends, so that a
// statement still running when its time is up stops.
func (t *jobTx[TTx]) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return withCancelOf(ctx, t.life)
}

// track and untrack keep the driver's results that hold the connection
// (pgx rows and batch results) until they are closed; the caller holds sem.
func (t *jobTx[TTx]) track(key any, closeResult func()) {
	if t.results == nil {
		t.results = map[any]func(){}
	}
	t.results[key] = closeResult
}

func (t *jobTx[TTx]) untrack(key any) { delete(t.results, key) }

// A turn's savepoint. One name serves every turn of a batch: a turn that
// succeeds leaves its savepoint for the next turn to release in the same
// round trip as it opens its own, and the commit releases the last one.
const (
	releaseTurn  = "RELEASE SAVEPOINT inbox_turn"
	openTurn     = "SAVEPOINT inbox_turn"
	rollbackTurn = "ROLLBACK TO SAVEPOINT inbox_turn"
)

// open waits for a turn in a batch, then, in one round trip on Postgres:
// releases the previous turn's savepoint if it is still open, opens this
// job's, marks the job completed if it is still this attempt's, and runs
// first, the handler's first statement, reporting the rows that one changed.
// A first statement that ran though the job was not this attempt's any more
// is undone with the savepoint. A call that gave up waiting because the
// handler returned leaves the Tx as it was.
func (t *jobTx[TTx]) open(ctx context.Context, first *statement) (int64, error) {
	n, err := t.openTurn(ctx, first)
	if err != nil && !errors.Is(err, ErrTxDone) {
		t.failed = err
	}
	return n, err
}

func (t *jobTx[TTx]) openTurn(ctx context.Context, first *statement) (int64, error) {
	client, err := river.ClientFromContextSafely[TTx](ctx)
	if err != nil {
		return 0, fmt.Errorf("inbox: the delivery's transaction is only available on a River worker: %w", err)
	}
	driver := client.Driver()
	joinCtx, stopJoin := withCancelOf(ctx, t.closing)
	t.turn, err = t.batches.join(joinCtx, driver)
	stopJoin()
	if err != nil {
		if t.closing.Err() != nil {
			return 0, context.Cause(t.closing)
		}
		return 0, err
	}
	granted := time.Now()
	t.timer = time.AfterFunc(t.timeout, func() { t.expire(granted) })
	t.tx = driver.UnwrapTx(t.turn.tx)
	var stmts []statement
	if *t.turn.savepointOpen {
		stmts = append(stmts, statement{query: releaseTurn})
	}
	stmts = append(stmts, statement{query: openTurn},
		statement{completeIfOwner(client.Schema(), t.dialect), []any{t.job.ID, t.job.Attempt}})
	completion := len(stmts) - 1
	if first != nil {
		stmts = append(stmts, *first)
	}
	rows, err := t.dialect.execTxAll(ctx, t.tx, stmts)
	*t.turn.savepointOpen = false
	t.opened = true // if the savepoint did not open, undoing it fails and the batch is given up
	switch {
	case err != nil:
		return 0, err
	case rows[completion] != 1:
		return 0, errNotOwner
	case first != nil:
		return rows[completion+1], nil
	}
	return 0, nil
}

// end ends the Tx once its handler has returned handlerErr, and reports the
// delivery's outcome: nil once its effects and its completion are
// committed. A call from another goroutine still waiting for a turn gives
// up; one whose statement is running is waited for. Every later call fails
// with ErrTxDone. A handler that wrote nothing has no effect to keep
// together with its completion: River's own completer records it, in
// batches of its own.
func (t *jobTx[TTx]) end(handlerErr error) error {
	t.returned(errTxReturned)
	t.sem <- struct{}{}
	if held := t.expired.Load(); held != nil {
		t.takeBack(held) // the time was up as the handler returned
	}
	var kept *turn[TTx]
	err := t.ended
	if err == nil {
		t.ended = errTxReturned
		t.closeResults()
		switch {
		case handlerErr != nil:
			err = handlerErr
		case t.failed != nil:
			err = t.failed // even if the handler ignored it: its effects are not all there
		case t.turn != nil && txAborted(t.tx):
			err = errTxAborted
		}
		switch {
		case t.turn == nil:
		case err != nil:
			t.giveBack()
		default:
			kept, t.turn = t.turn, nil
			*kept.savepointOpen = true // the next turn, or the commit, releases it
			kept.release(true, false)
		}
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	t.unlock()
	t.kill(errTxReturned)
	if kept != nil {
		return kept.batch.wait()
	}
	return err
}

// expire takes the turn back once it has been held for timeout, whatever the
// handler does: it cancels the handler's context and any statement running
// in the Tx, rolls the savepoint back and gives the turn to the next
// delivery. The handler's later calls fail, and its job fails with the same
// error, for River to retry with backoff.
func (t *jobTx[TTx]) expire(granted time.Time) {
	held := &heldError{held: time.Since(granted), bound: t.timeout}
	// The Tx is marked taken back, then dies, before the handler hears of
	// it: a handler that wakes on its context's end finds its Tx ended,
	// and if it returns before the take-back below, end takes it back.
	t.expired.Store(held)
	t.kill(held)
	t.stopHandler(held)
	t.sem <- struct{}{}
	defer t.unlock()
	t.takeBack(held)
}

// takeBack ends the Tx with held, unless it has ended already; the caller
// holds sem.
func (t *jobTx[TTx]) takeBack(held *heldError) {
	if t.ended != nil || t.turn == nil {
		return
	}
	t.ended = held
	t.closeResults()
	t.giveBack()
	t.log.Error("delivery handler kept its transaction too long: rolled back and taken back; River retries it",
		"event", t.job.Args.EventType, "job_id", t.job.ID, "body_sha256", t.job.Args.BodySHA256,
		"attempt", t.job.Attempt, "held", held.held.Round(time.Millisecond).String(), "bound", held.bound.String())
}

// closeResults closes what the handler left open on the connection, which
// the next turn needs; the caller holds sem.
func (t *jobTx[TTx]) closeResults() {
	for _, closeResult := range t.results {
		closeResult()
	}
	t.results = nil
}

// giveBack rolls back the turn's savepoint and ends the turn; the caller
// holds sem.
func (t *jobTx[TTx]) giveBack() {
	broken := !t.opened || t.undo(context.Background()) != nil
	t.turn.release(false, broken)
	t.turn = nil
}

// queryInt reads one integer in the turn's transaction, which must be open.
func (t *jobTx[TTx]) queryInt(ctx context.Context, query string, args ...any) (int64, error) {
	if err := t.acquire(ctx); err != nil {
		return 0, err
	}
	defer t.unlock()
	if t.turn == nil {
		return 0, errors.New("inbox: no statement has opened the delivery's transaction")
	}
	ctx, stop := t.bound(ctx)
	defer stop()
	return t.dialect.queryIntTx(ctx, t.tx, query, args...)
}

// undo rolls back to this turn's savepoint and releases it, one statement at
// a time: a failed statement aborts a Postgres transaction, where nothing
// but the rollback can run, and a pipelined batch prepares every statement
// first.
func (t *jobTx[TTx]) undo(ctx context.Context) error {
	for _, q := range []string{rollbackTurn, releaseTurn} {
		if _, err := t.dialect.execTx(ctx, t.tx, q); err != nil {
			return err
		}
	}
	return nil
}

// withCancelOf returns ctx, cancelled also, with other's cause, when other is.
func withCancelOf(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// completeIfOwner marks the job completed, first in its savepoint, if it is
// still the running attempt's: the row stays locked until the batch commits,
// so two processes can never both commit an effect for one delivery, and a
// failing handler's rollback to the savepoint undoes the completion with its
// effects. It is River's completion in one small statement: on SQLite,
// River's own takes three that are each parsed anew.
func completeIfOwner(schema string, d sqldb.Dialect) string {
	return `UPDATE ` + riverJobTable(schema) + ` SET state = 'completed', finalized_at = ` + d.Now() +
		` WHERE id = $1 AND state = 'running' AND attempt = $2`
}
