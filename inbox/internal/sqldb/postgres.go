package sqldb

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresConfig parses a postgres:// URL into a pool configuration; its
// error never quotes the URL.
func PostgresConfig(raw string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, errors.New("not a valid postgres:// URL")
	}
	return cfg, nil
}

// ConnectPostgres opens a pool and checks that the server answers. Its
// errors keep the server's reason but never the URL it was given.
func ConnectPostgres(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New("cannot configure the Postgres pool")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) {
			return nil, errors.New("connecting to Postgres: " + err.Error())
		}
		return nil, errors.New("connecting to Postgres: the server cannot be reached or refused the connection")
	}
	return pool, nil
}
