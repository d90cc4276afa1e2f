package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// deliveryKind is the River job kind of a delivery, inbox.DeliveryArgs{}.Kind().
const deliveryKind = "cakemail_delivery"

// store is the inbox's database, reached beside the running receiver: on
// SQLite without the receiver's file lock (the command never opens the inbox
// itself), on Postgres as one more client. Its River client inserts and
// queries only: it runs no job.
type store interface {
	// counts reads how many deliveries are in each state.
	counts(ctx context.Context) (stateCounts, error)
	// list visits the deliveries in states, newest finalized first when
	// byFinalized, by id otherwise, until visit returns false.
	list(ctx context.Context, states []rivertype.JobState, byFinalized bool, visit func(*rivertype.JobRow) bool) error
	// oldestWaiting is the waiting delivery (new, or due for a retry) due the longest, or nil.
	oldestWaiting(ctx context.Context) (*rivertype.JobRow, error)
	get(ctx context.Context, id int64) (*rivertype.JobRow, error)
	// retry makes a job available to run again now.
	retry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	close()
}

type stateCounts struct {
	Waiting, Running, Retrying, Dead, CompletedLastHour int64
}

// openStore connects to the database DATABASE_URL names. Its errors never
// hold the URL: it may hold a password.
func openStore(ctx context.Context, rawURL string) (store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite://"))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL)
	default:
		if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" && strings.HasPrefix(rawURL, u.Scheme+"://") {
			return nil, usageErrorf("DATABASE_URL: unsupported scheme %q: want sqlite:///path/to/file.db or postgres://...", u.Scheme)
		}
		return nil, usageErrorf("DATABASE_URL: want sqlite:///path/to/file.db or postgres://...")
	}
}

func openSQLite(ctx context.Context, path string) (store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, usageErrorf("DATABASE_URL: want sqlite:///path/to/file.db")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no database at %s: %w", path, errors.Unwrap(err))
	}
	// The receiver holds its lock on the file, not SQLite's: this connection
	// shares the database the way SQLite allows, waiting up to busy_timeout
	// for the receiver's commits. mode=rw never creates a file at a wrong path.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?mode=rw&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(ON)&_txlock=immediate&_time_format=sqlite"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s, err := newRiverStore(ctx, riversqlite.New(db), true, func() { db.Close() })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, rawURL string) (store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's error can quote the URL, password included.
		return nil, usageErrorf("DATABASE_URL: not a valid postgres:// URL")
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New("DATABASE_URL: cannot configure the Postgres pool")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) {
			return nil, fmt.Errorf("connecting to Postgres: %w", err)
		}
		return nil, errors.New("connecting to Postgres: the server cannot be reached or refused the connection")
	}
	return newRiverStore(ctx, riverpgxv5.New(pool), false, pool.Close)
}

type riverStore[TTx any] struct {
	client  *river.Client[TTx]
	exec    riverdriver.Executor
	sqlite  bool
	closeFn func()
}

func newRiverStore[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], sqlite bool, closeFn func()) (store, error) {
	client, err := river.NewClient(driver, &river.Config{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		closeFn()
		return nil, err
	}
	s := &riverStore[TTx]{client: client, exec: driver.GetExecutor(), sqlite: sqlite, closeFn: closeFn}
	exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'river_job'`
	if !sqlite {
		exists = `SELECT CASE WHEN to_regclass('river_job') IS NULL THEN 0 ELSE 1 END`
	}
	var n int64
	if err := s.exec.QueryRow(ctx, exists).Scan(&n); err != nil {
		closeFn()
		return nil, err
	}
	if n == 0 {
		closeFn()
		return nil, errors.New("no inbox in this database: River's tables are missing (has the receiver run on it?)")
	}
	return s, nil
}

func (s *riverStore[TTx]) close() { s.closeFn() }

func (s *riverStore[TTx]) counts(ctx context.Context) (stateCounts, error) {
	hourAgo := `finalized_at >= now() - interval '1 hour'`
	if s.sqlite {
		hourAgo = `unixepoch(finalized_at, 'subsec') >= unixepoch('now', 'subsec') - 3600`
	}
	var c stateCounts
	err := s.exec.QueryRow(ctx, `SELECT
		coalesce(sum(CASE WHEN state IN ('available', 'pending', 'scheduled') THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'retryable' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state IN ('discarded', 'cancelled') THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'completed' AND `+hourAgo+` THEN 1 ELSE 0 END), 0)
		FROM river_job WHERE kind = $1`, deliveryKind).
		Scan(&c.Waiting, &c.Running, &c.Retrying, &c.Dead, &c.CompletedLastHour)
	return c, err
}

func (s *riverStore[TTx]) list(ctx context.Context, states []rivertype.JobState, byFinalized bool, visit func(*rivertype.JobRow) bool) error {
	params := river.NewJobListParams().Kinds(deliveryKind).States(states...).First(500)
	if byFinalized {
		params = params.OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc)
	}
	for {
		res, err := s.client.JobList(ctx, params)
		if err != nil {
			return err
		}
		for _, job := range res.Jobs {
			if !visit(job) {
				return nil
			}
		}
		if len(res.Jobs) < 500 || res.LastCursor == nil {
			return nil
		}
		params = params.After(res.LastCursor)
	}
}

func (s *riverStore[TTx]) oldestWaiting(ctx context.Context) (*rivertype.JobRow, error) {
	res, err := s.client.JobList(ctx, river.NewJobListParams().Kinds(deliveryKind).
		States(rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled).
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(1))
	if err != nil || len(res.Jobs) == 0 || res.Jobs[0].ScheduledAt.After(now()) {
		return nil, err
	}
	return res.Jobs[0], nil
}

func (s *riverStore[TTx]) get(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	job, err := s.client.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, fmt.Errorf("no job %d", id)
	}
	return job, err
}

func (s *riverStore[TTx]) retry(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	return s.client.JobRetry(ctx, id)
}

// now is the clock the command reads; the database's and this machine's
// should agree to within seconds for --since to be exact.
var now = time.Now
