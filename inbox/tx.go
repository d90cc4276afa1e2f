package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// errNotOwner means the job is no longer this attempt's: it was handed to
// another process while this one ran, so this one must not apply anything.
var errNotOwner = errors.New("job was handed to another attempt")

// jobTx is a handler's Tx: a savepoint in the batch transaction that its
// turn is granted in. It begins at the first statement, so a handler's slow
// work before it writes holds no turn.
type jobTx[TTx any] struct {
	dialect dialect[TTx]
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
	n, err := t.dialect.execTx(ctx, t.tx, query, args...)
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
// is undone with the savepoint.
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

// complete keeps the delivery's effects and its completion in the batch and
// waits for the batch to commit. A handler that wrote nothing has no effect
// to keep together with its completion: River's own completer records it,
// in batches of its own.
func (t *jobTx[TTx]) complete() error {
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
	broken := !t.opened || t.undo(context.Background()) != nil
	t.turn.release(false, broken)
	t.turn = nil
}

// queryInt reads one integer in the turn's transaction, which must be open.
func (t *jobTx[TTx]) queryInt(ctx context.Context, query string, args ...any) (int64, error) {
	if t.turn == nil {
		return 0, errors.New("inbox: no statement has opened the delivery's transaction")
	}
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
