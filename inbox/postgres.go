package inbox

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// migrationLockKey keeps two replicas starting together from migrating at
// once; "cake" in ASCII, so it cannot collide with River's keys.
const migrationLockKey = 0x63616b65

// postgresDB is a Postgres database; any number of processes may share it.
type postgresDB struct {
	pool *pgxpool.Pool
	drv  *riverpgxv5.Driver
}

func openPostgres(ctx context.Context, rawURL string, workers int) (*postgresDB, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, errors.New("inbox: database URL: not a valid postgres:// URL")
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// Batches and acknowledgements each hold a connection for a commit;
		// River's fetches, completions and maintenance take a few more.
		cfg.MaxConns = 24
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New("inbox: database URL: cannot configure the Postgres pool")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, redactedConnectError(err)
	}
	return &postgresDB{pool: pool, drv: riverpgxv5.New(pool)}, nil
}

// redactedConnectError keeps pgx's reason but never the URL it was given.
func redactedConnectError(err error) error {
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		return errors.New("inbox: connecting to Postgres: " + err.Error())
	}
	return errors.New("inbox: connecting to Postgres: the server cannot be reached or refused the connection")
}

func (p *postgresDB) driver() riverdriver.Driver[pgx.Tx] { return p.drv }
func (p *postgresDB) defaultWorkers() int                { return 300 }
func (p *postgresDB) singleProcess() bool                { return false }
func (p *postgresDB) close()                             { p.pool.Close() }
func (p *postgresDB) nowMillis() string {
	return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
}
func (p *postgresDB) lastAttemptedBy() string { return `attempted_by[array_upper(attempted_by, 1)]` }

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

func (p *postgresDB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.pool.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (p *postgresDB) queryInts(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func (p *postgresDB) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (p *postgresDB) secondsSince(t string) string {
	return `extract(epoch from (now() - ` + t + `))::bigint`
}
