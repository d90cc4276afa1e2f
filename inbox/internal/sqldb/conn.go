package sqldb

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Conn runs statements outside any transaction, each committed on its own,
// on either database, and knows its dialect.
type Conn interface {
	Dialect
	// Exec runs one statement and reports the rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryInts runs a query whose rows are one integer each; NULLs are left out.
	QueryInts(ctx context.Context, query string, args ...any) ([]int64, error)
	// QueryStrings runs a query whose rows are one string each; NULLs are left out.
	QueryStrings(ctx context.Context, query string, args ...any) ([]string, error)
}

// SQLiteConn is a Conn on an SQLite database.
func SQLiteConn(db *sql.DB) Conn { return sqliteConn{sqliteDialect{}, db} }

// PostgresConn is a Conn on a Postgres pool.
func PostgresConn(pool *pgxpool.Pool) Conn { return postgresConn{postgresDialect{}, pool} }

type sqliteConn struct {
	sqliteDialect
	db *sql.DB
}

func (c sqliteConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c sqliteConn) QueryInts(ctx context.Context, query string, args ...any) ([]int64, error) {
	return queryRows[int64](ctx, c.db, query, args...)
}

func (c sqliteConn) QueryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	return queryRows[string](ctx, c.db, query, args...)
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

type postgresConn struct {
	postgresDialect
	pool *pgxpool.Pool
}

func (c postgresConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.pool.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (c postgresConn) QueryInts(ctx context.Context, query string, args ...any) ([]int64, error) {
	return queryPgRows[int64](ctx, c.pool, query, args...)
}

func (c postgresConn) QueryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	return queryPgRows[string](ctx, c.pool, query, args...)
}

func queryPgRows[T any](ctx context.Context, pool *pgxpool.Pool, query string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[*T])
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(all))
	for _, v := range all {
		if v != nil {
			out = append(out, *v)
		}
	}
	return out, nil
}
