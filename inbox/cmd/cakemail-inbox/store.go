package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// deliveryKind is the River job kind of a delivery, inbox.DeliveryArgs{}.Kind().
const deliveryKind = sqldb.DeliveryKind

// store is the inbox's database, reached beside the running receiver: on
// SQLite without the receiver's file lock (the command never opens the inbox
// itself), on Postgres as one more client. Its River client inserts and
// queries only: it runs no job.
type store interface {
	// counts reads how many deliveries are in each state, of one
	// subscriber's or, for "", of all.
	counts(ctx context.Context, subscriber string) (stateCounts, error)
	// list visits the deliveries in states, newest finalized first when
	// byFinalized, by id otherwise, until visit returns false.
	list(ctx context.Context, states []rivertype.JobState, byFinalized bool, visit func(*rivertype.JobRow) bool) error
	// oldestWaiting is the waiting delivery (new, or due for a retry) due
	// the longest, of one subscriber's or, for "", of all; or nil.
	oldestWaiting(ctx context.Context, subscriber string) (*rivertype.JobRow, error)
	get(ctx context.Context, id int64) (*rivertype.JobRow, error)
	// insert stores jobs that are not there yet, and returns the ids of
	// those it inserted (a job already there is a duplicate, left alone).
	insert(ctx context.Context, jobs []inbox.DeliveryArgs) ([]int64, error)
	// requeue makes the jobs among ids that are still in one of states
	// available to run now, each checked and moved in one statement, and
	// returns those it moved.
	requeue(ctx context.Context, states []string, ids []int64) ([]int64, error)
	close()
}

type stateCounts struct {
	Waiting, Running, Retrying, Dead, CompletedLastHour, StaleLastHour int64
}

// openStore connects to the database DATABASE_URL names. Its errors never
// hold the URL: it may hold a password.
func openStore(ctx context.Context, rawURL string) (store, error) {
	target, err := sqldb.ParseURL(rawURL)
	if err != nil {
		return nil, usageErrorf("DATABASE_URL: %s", err)
	}
	if target.SQLitePath != "" {
		return openSQLite(ctx, target.SQLitePath)
	}
	return openPostgres(ctx, target.PostgresURL)
}

func openSQLite(ctx context.Context, path string) (store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no database at %s: %w", path, errors.Unwrap(err))
	}
	// The receiver holds its lock on the file, not SQLite's: this connection
	// shares the database the way SQLite allows, with the receiver's own
	// settings, waiting up to busy_timeout for the receiver's commits.
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(path, false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s, err := newRiverStore(ctx, riversqlite.New(db), sqldb.SQLiteConn(db), func() { db.Close() })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, rawURL string) (store, error) {
	cfg, err := sqldb.PostgresConfig(rawURL)
	if err != nil {
		return nil, usageErrorf("DATABASE_URL: %s", err)
	}
	cfg.MaxConns = 2
	pool, err := sqldb.ConnectPostgres(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return newRiverStore(ctx, riverpgxv5.New(pool), sqldb.PostgresConn(pool), pool.Close)
}

type riverStore[TTx any] struct {
	client  *river.Client[TTx]
	exec    riverdriver.Executor
	conn    sqldb.Conn
	closeFn func()
}

func newRiverStore[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], conn sqldb.Conn, closeFn func()) (store, error) {
	client, err := river.NewClient(driver, &river.Config{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		closeFn()
		return nil, err
	}
	s := &riverStore[TTx]{client: client, exec: driver.GetExecutor(), conn: conn, closeFn: closeFn}
	exists := `SELECT CASE WHEN to_regclass('river_job') IS NULL THEN 0 ELSE 1 END`
	if conn.Name() == sqldb.SQLite.Name() {
		exists = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'river_job'`
	}
	n, err := conn.QueryInts(ctx, exists)
	if err != nil {
		closeFn()
		return nil, err
	}
	if len(n) != 1 || n[0] == 0 {
		closeFn()
		return nil, errors.New("no inbox in this database: River's tables are missing (has the receiver run on it?)")
	}
	return s, nil
}

func (s *riverStore[TTx]) close() { s.closeFn() }

func (s *riverStore[TTx]) counts(ctx context.Context, subscriber string) (stateCounts, error) {
	queue := ""
	if subscriber != "" {
		queue = sqldb.Queue(subscriber)
	}
	var c stateCounts
	err := s.exec.QueryRow(ctx, `SELECT
		coalesce(sum(CASE WHEN state IN ('available', 'pending', 'scheduled') THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'retryable' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state IN ('discarded', 'cancelled') THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'completed' AND `+s.conn.SecondsSince("finalized_at")+` < 3600 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN state = 'completed' AND `+s.conn.SecondsSince("finalized_at")+` < 3600
			AND `+s.conn.MetadataIsTrue(sqldb.StaleMark)+` THEN 1 ELSE 0 END), 0)
		FROM river_job WHERE kind = $1 AND ($2 = '' OR queue = $2)`, deliveryKind, queue).
		Scan(&c.Waiting, &c.Running, &c.Retrying, &c.Dead, &c.CompletedLastHour, &c.StaleLastHour)
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

func (s *riverStore[TTx]) oldestWaiting(ctx context.Context, subscriber string) (*rivertype.JobRow, error) {
	params := river.NewJobListParams().Kinds(deliveryKind).
		States(rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled).
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(1)
	if subscriber != "" {
		params = params.Queues(sqldb.Queue(subscriber))
	}
	res, err := s.client.JobList(ctx, params)
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

func (s *riverStore[TTx]) insert(ctx context.Context, jobs []inbox.DeliveryArgs) ([]int64, error) {
	ids := []int64{}
	for len(jobs) > 0 {
		chunk := jobs[:min(len(jobs), 500)]
		jobs = jobs[len(chunk):]
		params := make([]river.InsertManyParams, 0, len(chunk))
		for _, j := range chunk {
			params = append(params, river.InsertManyParams{Args: j})
		}
		results, err := s.client.InsertMany(ctx, params)
		if err != nil {
			return ids, err
		}
		for _, r := range results {
			if !r.UniqueSkippedAsDuplicate {
				ids = append(ids, r.Job.ID)
			}
		}
	}
	return ids, nil
}

func (s *riverStore[TTx]) requeue(ctx context.Context, states []string, ids []int64) ([]int64, error) {
	return sqldb.Requeue(ctx, s.conn, states, ids)
}

// now is the clock the command reads; the database's and this machine's
// should agree to within seconds for --since to be exact.
var now = time.Now
