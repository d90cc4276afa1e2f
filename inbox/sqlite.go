package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
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

// sqliteDialect is SQLite's SQL and behaviour. SQLite writes one
// transaction at a time: one batch and one acknowledgement commit at once,
// and a short batch hold, since acknowledgements wait for it.
type sqliteDialect struct{ sqldb.Dialect }

func (sqliteDialect) tuning() tuning {
	return tuning{workers: 200, batches: 1, batchHold: 10 * time.Millisecond, committers: 1}
}

// contention never happens: SQLite runs one transaction at a time.
func (sqliteDialect) contention(error) bool { return false }

func (sqliteDialect) execTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (sqliteDialect) queryIntTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (n int64, err error) {
	return n, tx.QueryRowContext(ctx, query, args...).Scan(&n)
}

func (d sqliteDialect) execTxAll(ctx context.Context, tx *sql.Tx, stmts []statement) ([]int64, error) {
	rows := make([]int64, 0, len(stmts))
	for _, s := range stmts {
		n, err := d.execTx(ctx, tx, s.query, s.args...)
		if err != nil {
			return rows, err
		}
		rows = append(rows, n)
	}
	return rows, nil
}

// sqliteDB is one SQLite file, used by this process alone.
type sqliteDB struct {
	sqliteDialect
	db        *sql.DB
	drv       *riversqlite.Driver
	path      string
	lock      *os.File     // the database file, locked for this process
	files     *sqliteFiles // watchFiles's
	closeOnce func()
	// stopWatching is watchFiles's, nil until it runs; close calls it.
	stopWatching func()
}

// openSQLite opens (creating if needed) the SQLite file at path. One process
// per database: the lock is on the file itself, so a second process is
// refused whatever path it reaches the file by, symlinks and hard links included.
func openSQLite(path string) (*sqliteDB, error) {
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(stmtCacheDriverName, sqldb.SQLiteDSN(path, true))
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
	s := &sqliteDB{
		sqliteDialect: sqliteDialect{sqldb.SQLite},
		db:            db,
		drv:           riversqlite.New(db),
		path:          path,
		lock:          lock,
	}
	s.closeOnce = sync.OnceFunc(func() {
		if s.stopWatching != nil {
			s.stopWatching()
		}
		stopCheckpoints()
		db.Close()
		lock.Close()
	})
	return s, nil
}

func (s *sqliteDB) driver() riverdriver.Driver[*sql.Tx] { return s.drv }
func (s *sqliteDB) conn() sqldb.Conn                    { return sqldb.SQLiteConn(s.db) }
func (s *sqliteDB) singleProcess() bool                 { return true }
func (s *sqliteDB) close()                              { s.closeOnce() }

// withMigrationLock needs no lock: the file lock keeps other processes out.
func (s *sqliteDB) withMigrationLock(_ context.Context, fn func() error) error { return fn() }

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
	return every(checkpointInterval, func() bool {
		mode := "PASSIVE"
		if fi, err := os.Stat(walPath); err == nil && fi.Size() > maxWALBytes {
			mode = "TRUNCATE"
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkpointInterval)
		db.ExecContext(ctx, "PRAGMA wal_checkpoint("+mode+")") //nolint:errcheck // the next tick tries again
		cancel()
		return true
	})
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
