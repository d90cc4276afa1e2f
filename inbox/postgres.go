package inbox

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// postgresDialect is Postgres's SQL and behaviour. Postgres commits several
// transactions at once: five batches, so that a handler holding its turn
// does not stall every other delivery, and a turn's round trips to the
// server overlap with other batches' work (an order key's claim is one more
// round trip before the handler: with three batches, keyed deliveries were
// processed at 78% of the others' rate, with five at 90%; more only compete
// for the same processors); and two acknowledgement commits.
type postgresDialect struct{ sqldb.Dialect }

// A batch's turns lock rows (their jobs, order keys, the handlers' own) in
// whatever order deliveries arrive, so two batches can each wait for the
// other. A short lock timeout in every batch ends such a wait well before
// Postgres's deadlock detection would (a second), and the turn that gave
// up runs again at once (contention).
func (postgresDialect) tuning() tuning {
	return tuning{workers: 300, batches: 5, batchHold: 20 * time.Millisecond, committers: 2,
		batchSetup: `SET LOCAL lock_timeout = '250ms'`}
}

func (postgresDialect) contention(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40P01", "55P03", "40001": // deadlock_detected, lock_not_available, serialization_failure
		return true
	}
	return false
}

func (postgresDialect) execTx(ctx context.Context, tx pgx.Tx, query string, args ...any) (int64, error) {
	tag, err := tx.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (postgresDialect) queryIntTx(ctx context.Context, tx pgx.Tx, query string, args ...any) (n int64, err error) {
	return n, tx.QueryRow(ctx, query, args...).Scan(&n)
}

// execTxAll sends the statements as one pgx batch: one round trip.
func (postgresDialect) execTxAll(ctx context.Context, tx pgx.Tx, stmts []statement) (rows []int64, err error) {
	batch := &pgx.Batch{}
	for _, s := range stmts {
		batch.Queue(s.query, s.args...)
	}
	results := tx.SendBatch(ctx, batch)
	defer func() {
		if closeErr := results.Close(); err == nil {
			err = closeErr
		}
	}()
	rows = make([]int64, 0, len(stmts))
	for range stmts {
		tag, err := results.Exec()
		if err != nil {
			return rows, err
		}
		rows = append(rows, tag.RowsAffected())
	}
	return rows, nil
}

// postgresDB is a Postgres database; any number of processes may share it.
type postgresDB struct {
	postgresDialect
	pool *pgxpool.Pool // River's: acknowledgements, batches, fetches
	own  *pgxpool.Pool // the inbox's own statements: heartbeats, rescues, metrics
	drv  *riverpgxv5.Driver
}

// Session settings. A process that stops without closing its connections
// (SIGSTOP, a long pause of its VM, a network partition) leaves its open
// transactions holding their row locks; these bound what it can hold up.
const (
	// idleInTransactionTimeout is how long Postgres lets an inbox session
	// sit idle inside a transaction before it ends the session, freeing its
	// locks: a frozen replica's batch gives its jobs up after that. It must
	// stay well above the longest legitimate pause inside a batch
	// transaction, a handler working between two of its statements, which
	// WithTxTimeout bounds (DefaultTxTimeout), so it is at least ten times
	// that bound. A URL that sets idle_in_transaction_session_timeout itself
	// keeps its value.
	idleInTransactionTimeout = 20 * time.Second
	// ownLockTimeout bounds how long the inbox's own statements wait for a
	// lock: a heartbeat or a rescue must never queue behind a frozen
	// process's transaction.
	ownLockTimeout = 500 * time.Millisecond
	// ownMaxConns is the inbox's own pool: the heartbeat and the rescue
	// take one, metrics another, and none of them waits for River's.
	ownMaxConns = 3
)

// openPostgres connects to the database at rawURL for an inbox whose
// handlers may keep their transaction txTimeout.
func openPostgres(ctx context.Context, rawURL string, txTimeout time.Duration) (*postgresDB, error) {
	cfg, err := sqldb.PostgresConfig(rawURL)
	if err != nil {
		return nil, errors.New("inbox: database URL: " + err.Error())
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// Batches and acknowledgements each hold a connection for a commit;
		// River's fetches, completions and maintenance take a few more.
		cfg.MaxConns = 24
	}
	params := cfg.ConnConfig.RuntimeParams
	if _, set := params["idle_in_transaction_session_timeout"]; !set {
		idle := max(idleInTransactionTimeout, 10*txTimeout)
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(idle.Milliseconds(), 10)
	}
	ownCfg := cfg.Copy()
	ownCfg.MaxConns = ownMaxConns
	ownCfg.MinConns = 0
	ownCfg.ConnConfig.RuntimeParams["lock_timeout"] = strconv.FormatInt(ownLockTimeout.Milliseconds(), 10)
	pool, err := sqldb.ConnectPostgres(ctx, cfg)
	if err != nil {
		return nil, errors.New("inbox: " + err.Error())
	}
	own, err := sqldb.ConnectPostgres(ctx, ownCfg)
	if err != nil {
		pool.Close()
		return nil, errors.New("inbox: " + err.Error())
	}
	return &postgresDB{postgresDialect: postgresDialect{sqldb.Postgres}, pool: pool, own: own, drv: riverpgxv5.New(pool)}, nil
}

func (p *postgresDB) driver() riverdriver.Driver[pgx.Tx] { return p.drv }
func (p *postgresDB) conn() sqldb.Conn                   { return sqldb.PostgresConn(p.own) }
func (p *postgresDB) singleProcess() bool                { return false }
func (p *postgresDB) close()                             { p.own.Close(); p.pool.Close() }

func (p *postgresDB) withMigrationLock(ctx context.Context, fn func() error) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", sqldb.MigrationLockKey); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", sqldb.MigrationLockKey) //nolint:errcheck // the lock goes with the session anyway
	return fn()
}
