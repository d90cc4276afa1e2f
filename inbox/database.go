package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
)

// database is what Open needs of SQLite or Postgres beyond River's driver.
// The inbox is written once against it; sqlite.go and postgres.go each
// implement it.
type database[TTx any] interface {
	driver() riverdriver.Driver[TTx]
	// defaultWorkers is how many deliveries one process works at once.
	defaultWorkers() int
	sqlRunner
	// withMigrationLock runs fn while no other process migrates.
	withMigrationLock(ctx context.Context, fn func() error) error
	close()
}

// migrate brings River's tables, the inbox's and the application's up to
// date. River applies each of its versions in a transaction of its own; the
// rest come in one more.
func migrate[TTx any](ctx context.Context, db database[TTx], schema []string) error {
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
		for _, stmt := range append([]string{clientsTable}, schema...) {
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

// databaseKind is where a database URL points.
type databaseKind struct {
	sqlitePath  string // set for SQLite
	postgresURL string // set for Postgres; may hold a password, so never logged
}

// parseDatabaseURL reads sqlite:///path/to/file.db or postgres://... Errors
// never repeat the URL: it may hold a password.
func parseDatabaseURL(raw string) (databaseKind, error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		path := strings.TrimPrefix(raw, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") {
			return databaseKind{}, errors.New("inbox: database URL: want sqlite:///path/to/file.db")
		}
		return databaseKind{sqlitePath: path}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgxpool.ParseConfig(raw); err != nil {
			// pgx's error can quote the URL, password included.
			return databaseKind{}, errors.New("inbox: database URL: not a valid postgres:// URL")
		}
		return databaseKind{postgresURL: raw}, nil
	default:
		// Only a well-formed scheme is echoed: anything else might be a secret.
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && strings.HasPrefix(raw, u.Scheme+"://") {
			return databaseKind{}, fmt.Errorf("inbox: database URL: unsupported scheme %q: want sqlite:// or postgres://", u.Scheme)
		}
		return databaseKind{}, errors.New("inbox: database URL: want sqlite:///path/to/file.db or a postgres:// URL")
	}
}
