package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

const (
	// checkpointInterval is how often the write-ahead log is copied into
	// the database file, off the commit path.
	checkpointInterval = 200 * time.Millisecond
	// maxWALBytes is the size past which a checkpoint waits for a quiet
	// moment and truncates the log: passive checkpoints copy frames, but
	// under constant load the log is never free to start over, and grows.
	maxWALBytes = 16 << 20
)

// sqliteDB is one SQLite file, used by this process alone.
type sqliteDB struct {
	db        *sql.DB
	drv       *riversqlite.Driver
	closeOnce func()
}

// openSQLite opens (creating if needed) the SQLite file at path. One process
// per database: the lock is on the file itself, so a second process is
// refused whatever path it reaches the file by, symlinks and hard links included.
func openSQLite(path string) (*sqliteDB, error) {
	lock, err := lockFile(path)
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
	db, err := sql.Open(stmtCacheDriverName, dsn)
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
	if err := db.Ping(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("inbox: opening %s: %w", path, err)
	}
	stopCheckpoints := checkpointInBackground(db, path+"-wal")
	return &sqliteDB{
		db:        db,
		drv:       riversqlite.New(db),
		closeOnce: sync.OnceFunc(func() { stopCheckpoints(); db.Close(); lock.Close() }),
	}, nil
}

func (s *sqliteDB) driver() riverdriver.Driver[*sql.Tx] { return s.drv }
func (s *sqliteDB) defaultWorkers() int                 { return 200 }
func (s *sqliteDB) singleProcess() bool                 { return true }
func (s *sqliteDB) close()                              { s.closeOnce() }
func (s *sqliteDB) nowMillis() string                   { return `CAST(unixepoch('subsec') * 1000 AS INTEGER)` }
func (s *sqliteDB) lastAttemptedBy() string             { return `json_extract(attempted_by, '$[#-1]')` }

// withMigrationLock needs no lock: the file lock keeps other processes out.
func (s *sqliteDB) withMigrationLock(_ context.Context, fn func() error) error { return fn() }

func (s *sqliteDB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqliteDB) queryInts(ctx context.Context, query string, args ...any) ([]int64, error) {
	return queryRows[int64](ctx, s.db, query, args...)
}

func (s *sqliteDB) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	return queryRows[string](ctx, s.db, query, args...)
}

func queryRows[T any](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v sql.Null[T]
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if v.Valid {
			out = append(out, v.V)
		}
	}
	return out, rows.Err()
}

// checkpointInBackground copies the write-ahead log into the database file
// every checkpointInterval, between transactions. SQLite would otherwise do
// it inside whichever commit crosses its threshold, and that acknowledgement
// would wait for it. A passive checkpoint copies what it can; once the log
// passes maxWALBytes, a truncating one starts it over, so it stays bounded
// under any load.
//
// It runs on the inbox's one connection, not a second one: a write to the
// log's shared-memory index on a frozen filesystem blocks its thread inside
// a page fault, where the Go scheduler cannot take its processor back; with
// one connection, at most one thread is ever caught that way, and the health
// check still gets a processor to answer on.
func checkpointInBackground(db *sql.DB, walPath string) (stop func()) {
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
				mode := "PASSIVE"
				if fi, err := os.Stat(walPath); err == nil && fi.Size() > maxWALBytes {
					mode = "TRUNCATE"
				}
				ctx, cancel := context.WithTimeout(context.Background(), checkpointInterval)
				db.ExecContext(ctx, "PRAGMA wal_checkpoint("+mode+")") //nolint:errcheck // the next tick tries again
				cancel()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// lockFile takes an exclusive lock on the database file, held until the
// file is closed or the process dies. flock locks the file, not the path,
// and is independent of the locks SQLite takes on the same file.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("inbox: opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("inbox: another process is using %s: SQLite takes one process; use Postgres for replicas", path)
		}
		return nil, fmt.Errorf("inbox: locking %s: %w", path, err)
	}
	return f, nil
}

func (s *sqliteDB) secondsSince(t string) string {
	return `CAST(unixepoch('now', 'subsec') - unixepoch(` + t + `, 'subsec') AS INTEGER)`
}
