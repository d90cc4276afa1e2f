package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// dialect is one database's SQL and behaviour, as River's drivers are its
// queries: sqlite.go and postgres.go each define one. A Worker and an
// Acceptor find theirs from River's transaction type, so a service's own
// River client gets the same as Open's.
type dialect[TTx any] interface {
	sqldb.Dialect
	// execTx runs a statement in a transaction of River's driver.
	execTx(ctx context.Context, tx TTx, query string, args ...any) (int64, error)
	// queryIntTx runs a query of one integer in a transaction of River's driver.
	queryIntTx(ctx context.Context, tx TTx, query string, args ...any) (int64, error)
	// execTxAll runs statements in order, in one round trip where the
	// database allows, and reports the rows each changed; it stops at the
	// first error.
	execTxAll(ctx context.Context, tx TTx, stmts []statement) ([]int64, error)
	tuning() tuning
	// contention reports whether err is a turn's lost race for a lock
	// another transaction holds (a deadlock, a lock timeout): nothing the
	// handler did wrong, so the job runs again soon, at no attempt's cost.
	contention(err error) bool
}

// tuning is how the inbox shares one database's time between acknowledging
// and processing (tuned with BenchmarkBurst).
type tuning struct {
	// workers is how many deliveries one process works at once by default;
	// most of them wait for a turn in a batch, which is cheap.
	workers int
	// batches is how many batch transactions run at once.
	batches int
	// batchHold bounds how long one batch holds its transaction open while
	// deliveries keep asking for turns.
	batchHold time.Duration
	// committers is how many acknowledgement commits run at once.
	committers int
	// batchSetup runs first in every batch transaction, "" for nothing.
	batchSetup string
}

// statement is a query and its arguments.
type statement struct {
	query string
	args  []any
}

// dialectFor is the dialect of River's driver whose transactions are TTx.
func dialectFor[TTx any]() (dialect[TTx], error) {
	var zero TTx
	var d any
	switch any(&zero).(type) {
	case *pgx.Tx:
		d = postgresDialect{sqldb.Postgres}
	case **sql.Tx:
		d = sqliteDialect{sqldb.SQLite}
	default:
		return nil, fmt.Errorf("inbox: no support for River drivers whose transactions are %T: use riverpgxv5 or riversqlite", zero)
	}
	return d.(dialect[TTx]), nil
}

// database is a database Open connected to: its dialect, River's driver on
// it, and a connection for statements outside River's transactions.
type database[TTx any] interface {
	dialect[TTx]
	driver() riverdriver.Driver[TTx]
	conn() sqldb.Conn
	// singleProcess is true where no other process can share the database
	// (the SQLite file lock), so every other client that ran on it is gone.
	singleProcess() bool
	// withMigrationLock runs fn while no other process migrates.
	withMigrationLock(ctx context.Context, fn func() error) error
	close()
}

// migrate brings River's tables, the inbox's and the application's up to
// date. River applies each of its versions in a transaction of its own; the
// rest come in one more.
func migrate[TTx any](ctx context.Context, db database[TTx], ddl []string) error {
	migrator, err := rivermigrate.New(db.driver(), nil)
	if err != nil {
		return err
	}
	return db.withMigrationLock(ctx, func() error {
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		exec := db.driver().GetExecutor()
		tx, err := exec.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
		for _, stmt := range append([]string{clientsTable, clientQueuesTable, orderTable, orderTableIndex}, ddl...) {
			if err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("schema: %w", err)
			}
		}
		return tx.Commit(ctx)
	})
}

// clientsTable holds each running process's heartbeat: a process whose
// heartbeat stopped is gone, and its running jobs can be handed to a live one.
const clientsTable = `CREATE TABLE IF NOT EXISTS cakemail_inbox_client (
	id TEXT PRIMARY KEY,
	heartbeat_at BIGINT NOT NULL
)`
