// Package sqldb is what package inbox and the cakemail-inbox command share
// about their two databases: reading a database URL, the settings every
// connection takes, errors that never quote a password, the SQL that differs
// between SQLite and Postgres, and the operator's state changes.
package sqldb

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Target is where a database URL points: exactly one field is set.
type Target struct {
	SQLitePath  string // sqlite:///path/to/file.db
	PostgresURL string // postgres://...; may hold a password, so never logged
}

// ParseURL reads sqlite:///path/to/file.db or postgres://... Its errors
// never repeat the URL, which may hold a password; callers prefix them with
// what the URL is (an option, an environment variable).
func ParseURL(raw string) (Target, error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		path := strings.TrimPrefix(raw, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") {
			return Target{}, errors.New("want sqlite:///path/to/file.db")
		}
		return Target{SQLitePath: path}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgxpool.ParseConfig(raw); err != nil {
			// pgx's error can quote the URL, password included.
			return Target{}, errors.New("not a valid postgres:// URL")
		}
		return Target{PostgresURL: raw}, nil
	default:
		// Only a well-formed scheme is echoed: anything else might be a secret.
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && strings.HasPrefix(raw, u.Scheme+"://") {
			return Target{}, fmt.Errorf("unsupported scheme %q: want sqlite:///path/to/file.db or a postgres:// URL", u.Scheme)
		}
		return Target{}, errors.New("want sqlite:///path/to/file.db or a postgres:// URL")
	}
}

// Redact removes the password of rawURL from msg, however it is quoted,
// should an error have quoted the URL.
func Redact(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return msg
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return msg
	}
	for _, s := range []string{rawURL, u.User.String(), pw, url.QueryEscape(pw), url.PathEscape(pw)} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
