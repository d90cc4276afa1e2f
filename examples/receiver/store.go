package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// store is the database a receiver runs on. The receiver, its worker and its
// handlers are written once against it; only newSQLiteStore and
// newPostgresStore know which database is underneath.
type store[TTx any] struct {
	name   string // "sqlite" or "postgres", for logs
	driver riverdriver.Driver[TTx]
	// workers is how many jobs one process runs at once. SQLite writes one
	// transaction at a time, so more workers there only queue in front of
	// the acknowledgements.
	workers int
	// ownerCheck, run first in a job's transaction, locks the job row and
	// changes it only if the job is still the running attempt's, so two
	// processes can never both commit an effect for one delivery. Empty
	// where that cannot happen.
	ownerCheck string
	// writeSlots, when set, lets only that many job transactions wait for
	// the database at once, so an acknowledgement never queues behind every
	// worker at the same time.
	writeSlots chan struct{}

	begin    func(ctx context.Context) (TTx, error)
	commit   func(ctx context.Context, tx TTx) error
	rollback func(ctx context.Context, tx TTx) error
	// exec runs a statement in tx and reports how many rows it changed.
	// Both databases take $1-style placeholders.
	exec func(ctx context.Context, tx TTx, query string, args ...any) (int64, error)
	// count runs a query returning one integer outside any transaction.
	count func(ctx context.Context, query string, args ...any) (int64, error)
	ping  func(ctx context.Context) error
	close func() // idempotent

	// migrationLock runs fn while holding a lock that keeps two replicas
	// starting together from migrating at once.
	migrationLock func(ctx context.Context, fn func() error) error
	schema        []string

	// claimLiveness proves, for as long as this process lives, that clientID
	// is alive; isDead reports that the process that ran clientID is gone,
	// so its running jobs can be handed to a live one at once instead of
	// after River's stuck-job timeout.
	claimLiveness func(ctx context.Context, clientID string) error
	isDead        func(ctx context.Context, clientID string) (bool, error)
	// runningOwners lists the River clients holding running jobs; rescueOwner
	// makes the running jobs of one of them available again.
	runningOwners func(ctx context.Context) ([]string, error)
	rescueOwner   string
}

// databaseTarget is where DATABASE_URL points.
type databaseTarget struct {
	sqlitePath  string // set for SQLite
	postgresURL string // set for Postgres; may hold a password, so never logged
}

// parseDatabaseURL reads DATABASE_URL: unset is receiver.db in the working
// directory, sqlite:///path/to/file.db a SQLite file, postgres://... Postgres.
func parseDatabaseURL(raw string) (databaseTarget, error) {
	switch {
	case raw == "":
		return databaseTarget{sqlitePath: "receiver.db"}, nil
	case strings.HasPrefix(raw, "sqlite://"):
		path := strings.TrimPrefix(raw, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") {
			return databaseTarget{}, errors.New("DATABASE_URL: want sqlite:///path/to/file.db")
		}
		return databaseTarget{sqlitePath: path}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgxpool.ParseConfig(raw); err != nil {
			// pgx's error can quote the URL, password included.
			return databaseTarget{}, errors.New("DATABASE_URL: not a valid postgres:// URL")
		}
		return databaseTarget{postgresURL: raw}, nil
	default:
		// Only a well-formed scheme is echoed: anything else might be a secret.
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && strings.HasPrefix(raw, u.Scheme+"://") {
			return databaseTarget{}, fmt.Errorf("DATABASE_URL: unsupported scheme %q: want sqlite:// or postgres://", u.Scheme)
		}
		return databaseTarget{}, errors.New("DATABASE_URL: want sqlite:///path/to/file.db or a postgres:// URL")
	}
}

// newSQLiteStore opens (creating if needed) the SQLite file at path. Only one
// process may use a SQLite database at a time: a second one is refused.
func newSQLiteStore(path string) (*store[*sql.Tx], error) {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	// WAL lets readers run beside the writer. synchronous(FULL) makes every
	// commit survive a power cut, not only a crash: a 2xx is a promise.
	// _txlock=immediate takes the write lock at BEGIN, so a transaction never
	// fails half-way with SQLITE_BUSY; busy_timeout waits for it instead.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(ON)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)&_txlock=immediate&_time_format=sqlite"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		lock.Close()
		return nil, err
	}
	// SQLite runs one writer at a time; River's documentation asks for one
	// connection, which also makes commits queue in Go rather than spin on
	// SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	stopCheckpoints, err := checkpointInBackground(dsn)
	if err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}

	return &store[*sql.Tx]{
		name:    "sqlite",
		workers: 10,
		// One process per file (the lock above) means no job can be
		// reassigned while it runs: the ownership check is not needed.
		ownerCheck: "",
		driver:     riversqlite.New(db),
		begin:      func(ctx context.Context) (*sql.Tx, error) { return db.BeginTx(ctx, nil) },
		commit:     func(_ context.Context, tx *sql.Tx) error { return tx.Commit() },
		rollback:   func(_ context.Context, tx *sql.Tx) error { return tx.Rollback() },
		exec: func(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		},
		count: func(ctx context.Context, query string, args ...any) (int64, error) {
			var n int64
			err := db.QueryRowContext(ctx, query, args...).Scan(&n)
			return n, err
		},
		ping:  db.PingContext,
		close: sync.OnceFunc(func() { stopCheckpoints(); db.Close(); lock.Close() }),
		// The file lock already keeps other processes out.
		migrationLock: func(_ context.Context, fn func() error) error { return fn() },
		schema: []string{
			`CREATE TABLE IF NOT EXISTS processed_events (
				id INTEGER PRIMARY KEY,
				body_sha256 TEXT NOT NULL,
				event_type TEXT NOT NULL,
				processed_at TEXT NOT NULL
			)`,
			`CREATE INDEX IF NOT EXISTS processed_events_body_sha256 ON processed_events (body_sha256)`,
		},
		// The file lock makes this the only process on the database, so
		// every other client that ever ran on it is gone.
		claimLiveness: func(context.Context, string) error { return nil },
		isDead:        func(context.Context, string) (bool, error) { return true, nil },
		runningOwners: func(ctx context.Context) ([]string, error) {
			return queryStrings(ctx, db, `SELECT DISTINCT json_extract(attempted_by, '$[#-1]') FROM river_job
				WHERE state = 'running' AND json_array_length(attempted_by) > 0`)
		},
		rescueOwner: `UPDATE river_job SET state = 'available'
			WHERE state = 'running' AND json_extract(attempted_by, '$[#-1]') = $1`,
	}, nil
}

// checkpointInBackground copies the write-ahead log into the database file
// from a connection of its own, every checkpointInterval. SQLite would
// otherwise do it inside whichever commit crosses the threshold, and that
// acknowledgement would wait tens of milliseconds for it. PASSIVE never
// blocks a writer.
func checkpointInBackground(dsn string) (stop func(), err error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				db.Exec("PRAGMA wal_checkpoint(PASSIVE)") //nolint:errcheck // the next tick tries again
			}
		}
	}()
	return func() { close(done); <-stopped; db.Close() }, nil
}

// checkpointInterval bounds how far the write-ahead log grows between checkpoints.
const checkpointInterval = 500 * time.Millisecond

// lockFile takes an exclusive lock on path, held until the file is closed
// (or the process dies, which the kernel releases for us).
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another receiver is using %s: SQLite takes one process; use Postgres for replicas", strings.TrimSuffix(path, ".lock"))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

func queryStrings(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s.Valid {
			out = append(out, s.String)
		}
	}
	return out, rows.Err()
}

// livenessLockSpace is the first key of this receiver's advisory locks, so
// they cannot collide with River's or the application's.
const livenessLockSpace = 0x63616b65 // "cake"

// newPostgresStore connects to Postgres. Any number of replicas may share it.
func newPostgresStore(ctx context.Context, rawURL string) (*store[pgx.Tx], error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, errors.New("DATABASE_URL: not a valid postgres:// URL")
	}
	const workers = 20
	if !strings.Contains(rawURL, "pool_max_conns") {
		// A connection for each worker, and some for acknowledgements.
		cfg.MaxConns = workers + 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New("DATABASE_URL: cannot configure the Postgres pool")
	}
	// livenessConn holds this process's advisory lock; Postgres releases it
	// the moment the process dies and its connection drops.
	var livenessConn *pgx.Conn
	return &store[pgx.Tx]{
		name:    "postgres",
		workers: 20,
		ownerCheck: `UPDATE river_job SET state = state
			WHERE id = $1 AND state = 'running' AND attempt = $2`,
		driver:   riverpgxv5.New(pool),
		begin:    func(ctx context.Context) (pgx.Tx, error) { return pool.Begin(ctx) },
		commit:   func(ctx context.Context, tx pgx.Tx) error { return tx.Commit(ctx) },
		rollback: func(ctx context.Context, tx pgx.Tx) error { return tx.Rollback(ctx) },
		exec: func(ctx context.Context, tx pgx.Tx, query string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, query, args...)
			return tag.RowsAffected(), err
		},
		count: func(ctx context.Context, query string, args ...any) (int64, error) {
			var n int64
			err := pool.QueryRow(ctx, query, args...).Scan(&n)
			return n, err
		},
		ping: pool.Ping,
		close: sync.OnceFunc(func() {
			if livenessConn != nil {
				livenessConn.Close(context.Background())
			}
			pool.Close()
		}),
		migrationLock: func(ctx context.Context, fn func() error) error {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, 0)", livenessLockSpace); err != nil {
				return err
			}
			defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, 0)", livenessLockSpace) //nolint:errcheck // the lock goes with the session anyway
			return fn()
		},
		schema: []string{
			`CREATE TABLE IF NOT EXISTS processed_events (
				id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				body_sha256 TEXT NOT NULL,
				event_type TEXT NOT NULL,
				processed_at TIMESTAMPTZ NOT NULL
			)`,
			`CREATE INDEX IF NOT EXISTS processed_events_body_sha256 ON processed_events (body_sha256)`,
		},
		claimLiveness: func(ctx context.Context, clientID string) error {
			conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
			if err != nil {
				return fmt.Errorf("liveness connection: %w", err)
			}
			if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", livenessLockSpace, clientID); err != nil {
				conn.Close(ctx)
				return fmt.Errorf("liveness lock: %w", err)
			}
			livenessConn = conn
			return nil
		},
		isDead: func(ctx context.Context, clientID string) (bool, error) {
			// Free lock: nobody holds it, so its owner is gone. Taken and
			// released in one statement, so the probe never keeps it. A hash
			// collision with a live client only reads as alive: safe.
			var free bool
			err := pool.QueryRow(ctx, `SELECT CASE WHEN pg_try_advisory_lock($1, hashtext($2))
				THEN pg_advisory_unlock($1, hashtext($2)) ELSE false END`, livenessLockSpace, clientID).Scan(&free)
			return free, err
		},
		runningOwners: func(ctx context.Context) ([]string, error) {
			rows, err := pool.Query(ctx, `SELECT DISTINCT attempted_by[array_upper(attempted_by, 1)] FROM river_job
				WHERE state = 'running' AND array_upper(attempted_by, 1) > 0`)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowTo[string])
		},
		rescueOwner: `UPDATE river_job SET state = 'available'
			WHERE state = 'running' AND attempted_by[array_upper(attempted_by, 1)] = $1`,
	}, nil
}

// migrate brings River's tables and the receiver's own up to date. River
// applies each of its versions in a transaction of its own (a later one may
// use what an earlier one added), and the receiver's tables come in one more.
func (s *store[TTx]) migrate(ctx context.Context) error {
	migrator, err := rivermigrate.New(s.driver, nil)
	if err != nil {
		return err
	}
	return s.migrationLock(ctx, func() error {
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		tx, err := s.begin(ctx)
		if err != nil {
			return err
		}
		defer s.rollback(ctx, tx) //nolint:errcheck // a no-op after commit
		for _, stmt := range s.schema {
			if _, err := s.exec(ctx, tx, stmt); err != nil {
				return fmt.Errorf("receiver schema: %w", err)
			}
		}
		return s.commit(ctx, tx)
	})
}
