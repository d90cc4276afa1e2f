package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// On Postgres, DriverTx hands out a pgx.Tx of the inbox's own: every call
// goes through the delivery's Tx, one at a time, and fails with ErrTxDone
// once the Tx has ended, so a goroutine a handler left behind cannot reach
// the batch transaction. *sql.Tx, SQLite's, is a concrete type and is
// handed out as it is.

// txGuard is the part of a delivery's Tx that the pgx.Tx it hands out goes
// through.
type txGuard interface {
	acquire(ctx context.Context) error
	unlock()
	bound(ctx context.Context) (context.Context, context.CancelFunc)
	track(key any, closeResult func())
	untrack(key any)
}

// guardDriverTx is tx as DriverTx hands it to a handler.
func guardDriverTx[TTx any](t *jobTx[TTx], tx TTx) TTx {
	if ptx, ok := any(tx).(pgx.Tx); ok {
		return any(&guardedTx{guard: t, tx: ptx}).(TTx)
	}
	return tx
}

// errTxAborted fails a delivery whose handler returned nil although a
// statement of its own failed and left the transaction aborted.
var errTxAborted = errors.New("inbox: a statement of the handler failed and aborted its transaction, though the handler returned nil")

// txAborted reports whether tx is a Postgres transaction that a failed
// statement aborted: it would refuse the next turn's statements, and its
// effects are not all there. It reads the status of the last reply, with no
// round trip.
func txAborted(tx any) bool {
	ptx, ok := tx.(pgx.Tx)
	return ok && ptx.Conn() != nil && ptx.Conn().PgConn().TxStatus() == 'E'
}

var (
	errCommitDelivery   = errors.New("inbox: the delivery's transaction commits with its job: return nil from the handler instead")
	errRollbackDelivery = errors.New("inbox: the delivery's transaction rolls back when its handler returns an error: return one instead")
)

// guardedTx is the delivery's pgx.Tx, or a savepoint the handler began in
// it (nested), which the handler commits or rolls back itself.
type guardedTx struct {
	guard  txGuard
	tx     pgx.Tx
	nested bool
}

var _ pgx.Tx = (*guardedTx)(nil)

// do runs fn alone on the transaction, with ctx cancelled when the Tx ends.
func (g *guardedTx) do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := g.guard.acquire(ctx); err != nil {
		return err
	}
	defer g.guard.unlock()
	ctx, stop := g.guard.bound(ctx)
	defer stop()
	return fn(ctx)
}

func (g *guardedTx) Begin(ctx context.Context) (pgx.Tx, error) {
	var nested pgx.Tx
	err := g.do(ctx, func(ctx context.Context) (err error) {
		nested, err = g.tx.Begin(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &guardedTx{guard: g.guard, tx: nested, nested: true}, nil
}

func (g *guardedTx) Commit(ctx context.Context) error {
	if !g.nested {
		return errCommitDelivery
	}
	return g.do(ctx, g.tx.Commit)
}

func (g *guardedTx) Rollback(ctx context.Context) error {
	if !g.nested {
		return errRollbackDelivery
	}
	return g.do(ctx, g.tx.Rollback)
}

func (g *guardedTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (n int64, err error) {
	err = g.do(ctx, func(ctx context.Context) error {
		n, err = g.tx.CopyFrom(ctx, table, columns, src)
		return err
	})
	return n, err
}

func (g *guardedTx) Prepare(ctx context.Context, name, sql string) (d *pgconn.StatementDescription, err error) {
	err = g.do(ctx, func(ctx context.Context) error {
		d, err = g.tx.Prepare(ctx, name, sql)
		return err
	})
	return d, err
}

func (g *guardedTx) Exec(ctx context.Context, sql string, args ...any) (tag pgconn.CommandTag, err error) {
	err = g.do(ctx, func(ctx context.Context) error {
		tag, err = g.tx.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// Query's rows keep the connection, and their context, until they are
// closed; the Tx closes them when it ends.
func (g *guardedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := g.guard.acquire(ctx); err != nil {
		return &guardedRows{err: err}, err
	}
	defer g.guard.unlock()
	ctx, stop := g.guard.bound(ctx)
	rows, err := g.tx.Query(ctx, sql, args...)
	if err != nil {
		stop()
		return &guardedRows{rows: rows, err: err}, err
	}
	r := &guardedRows{guard: g.guard, rows: rows, stop: stop}
	g.guard.track(r, r.closeLocked)
	return r, nil
}

func (g *guardedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := g.Query(ctx, sql, args...)
	return guardedRow{rows}
}

func (g *guardedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := g.guard.acquire(ctx); err != nil {
		return &guardedBatch{err: err}
	}
	defer g.guard.unlock()
	ctx, stop := g.guard.bound(ctx)
	r := &guardedBatch{guard: g.guard, results: g.tx.SendBatch(ctx, b), stop: stop}
	g.guard.track(r, func() { r.closeLocked() }) // a failure shows in the transaction's status
	return r
}

// LargeObjects and Conn reach the connection itself, past the guard: use
// them only while the handler runs, on its goroutine.
func (g *guardedTx) LargeObjects() pgx.LargeObjects { return g.tx.LargeObjects() }
func (g *guardedTx) Conn() *pgx.Conn                { return g.tx.Conn() }

// guardedRows are rows read through the guard: each call waits for the
// transaction and fails once the Tx has ended, when the Tx closes them.
type guardedRows struct {
	guard txGuard // nil for rows that failed before reaching the database
	rows  pgx.Rows
	stop  context.CancelFunc // ends the query's context; nil for a batch's rows
	err   error
}

var _ pgx.Rows = (*guardedRows)(nil)

func (r *guardedRows) acquire() bool {
	if r.guard == nil {
		return false
	}
	if err := r.guard.acquire(context.Background()); err != nil {
		if r.err == nil {
			r.err = err
		}
		return false
	}
	return true
}

// closeLocked closes the rows; the caller holds the guard.
func (r *guardedRows) closeLocked() {
	r.rows.Close()
	if r.stop != nil {
		r.guard.untrack(r)
		r.stop()
		r.stop = nil
	}
}

func (r *guardedRows) Close() {
	if r.acquire() {
		defer r.guard.unlock()
		r.closeLocked()
	}
}

func (r *guardedRows) Err() error {
	if r.err != nil || r.rows == nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *guardedRows) Next() bool {
	if !r.acquire() {
		return false
	}
	defer r.guard.unlock()
	if r.rows.Next() {
		return true
	}
	r.closeLocked()
	return false
}

func (r *guardedRows) Scan(dest ...any) error {
	if !r.acquire() {
		return r.Err()
	}
	defer r.guard.unlock()
	return r.rows.Scan(dest...)
}

func (r *guardedRows) Values() ([]any, error) {
	if !r.acquire() {
		return nil, r.Err()
	}
	defer r.guard.unlock()
	return r.rows.Values()
}

func (r *guardedRows) RawValues() [][]byte {
	if !r.acquire() {
		return nil
	}
	defer r.guard.unlock()
	return r.rows.RawValues()
}

func (r *guardedRows) CommandTag() pgconn.CommandTag {
	if r.rows == nil {
		return pgconn.CommandTag{}
	}
	return r.rows.CommandTag()
}

func (r *guardedRows) FieldDescriptions() []pgconn.FieldDescription {
	if r.rows == nil {
		return nil
	}
	return r.rows.FieldDescriptions()
}

func (r *guardedRows) Conn() *pgx.Conn {
	if r.rows == nil {
		return nil
	}
	return r.rows.Conn()
}

func (r *guardedRows) TypeMap() *pgtype.Map {
	if r.rows == nil {
		return nil
	}
	return r.rows.TypeMap()
}

// guardedRow is QueryRow's row, read as pgx reads its own.
type guardedRow struct{ rows pgx.Rows }

func (r guardedRow) Scan(dest ...any) error {
	rows := r.rows
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range dest {
		if _, ok := d.(*pgtype.DriverBytes); ok {
			rows.Close()
			return fmt.Errorf("cannot scan into *pgtype.DriverBytes from QueryRow")
		}
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	rows.Scan(dest...) //nolint:errcheck // Err reports it after Close, as pgx's own row does
	rows.Close()
	return rows.Err()
}

// guardedBatch is SendBatch's results, read through the guard.
type guardedBatch struct {
	guard   txGuard // nil when the batch was refused
	results pgx.BatchResults
	stop    context.CancelFunc
	closed  bool
	err     error
}

var _ pgx.BatchResults = (*guardedBatch)(nil)

func (b *guardedBatch) acquire() error {
	if b.guard == nil {
		return b.err
	}
	return b.guard.acquire(context.Background())
}

func (b *guardedBatch) Exec() (pgconn.CommandTag, error) {
	if err := b.acquire(); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer b.guard.unlock()
	return b.results.Exec()
}

func (b *guardedBatch) Query() (pgx.Rows, error) {
	if err := b.acquire(); err != nil {
		return &guardedRows{err: err}, err
	}
	defer b.guard.unlock()
	rows, err := b.results.Query()
	return &guardedRows{guard: b.guard, rows: rows}, err
}

func (b *guardedBatch) QueryRow() pgx.Row {
	rows, _ := b.Query()
	return guardedRow{rows}
}

func (b *guardedBatch) Close() error {
	if err := b.acquire(); err != nil {
		return err
	}
	defer b.guard.unlock()
	return b.closeLocked()
}

// closeLocked closes the batch; the caller holds the guard.
func (b *guardedBatch) closeLocked() error {
	if !b.closed {
		b.closed = true
		b.err = b.results.Close()
		b.guard.untrack(b)
		b.stop()
	}
	return b.err
}

// Tx is nil: a batch sent in the delivery's transaction begins none.
func (b *guardedBatch) Tx() pgx.Tx { return nil }
