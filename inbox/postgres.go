package inbox

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// postgresDialect is Postgres's SQL and behaviour. Postgres commits several
// transactions at once: a few batches, so that a handler holding its turn
// does not stall every other delivery (more only compete for the same
// processors), and two acknowledgement commits.
type postgresDialect struct{ sqldb.Dialect }

func (postgresDialect) tuning() tuning {
	return tuning{workers: 300, batches: 3, batchHold: 20 * time.Millisecond, committers: 2}
}

func (postgresDialect) execTx(ctx context.Context, tx pgx.Tx, query string, args ...any) (int64, error) {
	tag, err := tx.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
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

// migrationLockKey keeps two replicas starting together from migrating at
// once; "cake" in ASCII, so it cannot collide with River's keys.
const migrationLockKey = 0x63616b65

// postgresDB is a Postgres database; any number of processes may share it.
type postgresDB struct {
	postgresDialect
	pool *pgxpool.Pool
	drv  *riverpgxv5.Driver
}

func openPostgres(ctx context.Context, rawURL string) (*postgresDB, error) {
	cfg, err := sqldb.PostgresConfig(rawURL)
	if err != nil {
		return nil, errors.New("inbox: database URL: " + err.Error())
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// Batches and acknowledgements each hold a connection for a commit;
		// River's fetches, completions and maintenance take a few more.
		cfg.MaxConns = 24
	}
	pool, err := sqldb.ConnectPostgres(ctx, cfg)
	if err != nil {
		return nil, errors.New("inbox: " + err.Error())
	}
	return &postgresDB{postgresDialect: postgresDialect{sqldb.Postgres}, pool: pool, drv: riverpgxv5.New(pool)}, nil
}

func (p *postgresDB) driver() riverdriver.Driver[pgx.Tx] { return p.drv }
func (p *postgresDB) conn() sqldb.Conn                   { return sqldb.PostgresConn(p.pool) }
func (p *postgresDB) singleProcess() bool                { return false }
func (p *postgresDB) close()                             { p.pool.Close() }

func (p *postgresDB) withMigrationLock(ctx context.Context, fn func() error) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey) //nolint:errcheck // the lock goes with the session anyway
	return fn()
}
