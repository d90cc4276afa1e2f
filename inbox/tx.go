package inbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// execTx runs a statement in a River driver's transaction and reports the
// rows it changed. Both databases take $1-style placeholders.
func execTx[TTx any](ctx context.Context, tx TTx, query string, args ...any) (int64, error) {
	switch tx := any(tx).(type) {
	case pgx.Tx:
		tag, err := tx.Exec(ctx, query, args...)
		return tag.RowsAffected(), err
	case *sql.Tx:
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	default:
		return 0, fmt.Errorf("inbox: no Exec for a %T transaction: use DriverTx", tx)
	}
}

// A turn's savepoint. One name serves every turn of a batch: a turn that
// succeeds leaves its savepoint for the next turn to release in the same
// round trip as it opens its own, and the commit releases the last one.
const (
	releaseTurn  = "RELEASE SAVEPOINT inbox_turn"
	openTurnSQL  = "SAVEPOINT inbox_turn"
	rollbackTurn = "ROLLBACK TO SAVEPOINT inbox_turn"
)

// statement is a query and its arguments.
type statement struct {
	query string
	args  []any
}

// openTurn releases the previous turn's savepoint if it is still open, opens
// this turn's, runs completion and then first, if any: the handler's first
// statement. It reports the rows each changed. On Postgres all of it is one
// round trip; a handler's statement that ran though the job was not this
// attempt's any more is undone with the savepoint.
func openTurn[TTx any](ctx context.Context, tx TTx, releasePrevious bool, completion statement, first *statement) (completed, firstRows int64, err error) {
	stmts := []string{openTurnSQL}
	if releasePrevious {
		stmts = []string{releaseTurn, openTurnSQL}
	}
	if tx, ok := any(tx).(pgx.Tx); ok {
		batch := &pgx.Batch{}
		for _, s := range stmts {
			batch.Queue(s)
		}
		batch.Queue(completion.query, completion.args...)
		if first != nil {
			batch.Queue(first.query, first.args...)
		}
		results := tx.SendBatch(ctx, batch)
		defer func() {
			if closeErr := results.Close(); err == nil {
				err = closeErr
			}
		}()
		for range stmts {
			if _, err := results.Exec(); err != nil {
				return 0, 0, err
			}
		}
		tag, err := results.Exec()
		if err != nil || first == nil {
			return tag.RowsAffected(), 0, err
		}
		firstTag, err := results.Exec()
		return tag.RowsAffected(), firstTag.RowsAffected(), err
	}
	for _, s := range stmts {
		if _, err := execTx(ctx, tx, s); err != nil {
			return 0, 0, err
		}
	}
	if completed, err = execTx(ctx, tx, completion.query, completion.args...); err != nil || first == nil || completed != 1 {
		return completed, 0, err
	}
	firstRows, err = execTx(ctx, tx, first.query, first.args...)
	return completed, firstRows, err
}

// undoTurn rolls back to this turn's savepoint and releases it.
func undoTurn[TTx any](ctx context.Context, tx TTx) error {
	if _, err := execTx(ctx, tx, rollbackTurn); err != nil {
		return err
	}
	_, err := execTx(ctx, tx, releaseTurn)
	return err
}
