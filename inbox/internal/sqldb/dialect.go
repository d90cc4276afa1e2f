package sqldb

import (
	"encoding/json"
	"strconv"
)

// Dialect is the SQL that differs between SQLite and Postgres; SQLite and
// Postgres are its two values. Everything else the inbox writes is the same
// text on both, with $1-style placeholders.
type Dialect interface {
	// Name is River's name for the database (riverdriver.DatabaseName*).
	Name() string
	// Now is the current time as River stores its timestamps.
	Now() string
	// NowMillis is the database's clock in Unix milliseconds: replicas
	// compare heartbeats on one clock, not on theirs.
	NowMillis() string
	// SecondsSince is the whole seconds from the timestamp t to now.
	SecondsSince(t string) string
	// EpochSeconds is the timestamp t in Unix seconds.
	EpochSeconds(t string) string
	// LastAttemptedBy is the client that ran a job's latest attempt.
	LastAttemptedBy() string
	// ArgText is a field of a job's args, as text.
	ArgText(field string) string
	// MetadataWithout is a job's metadata without the keys.
	MetadataWithout(keys ...string) string
	// MetadataWithTrue is a job's metadata with key set to true.
	MetadataWithTrue(key string) string
	// MetadataIsTrue is "the job's metadata has key set to true".
	MetadataIsTrue(key string) string
	// MigrationLock is the statement that keeps, until its transaction
	// ends, other processes from creating tables at the same time; "" where
	// one process has the database.
	MigrationLock() string
	// IDIn is "id is one of the list in placeholder", whose argument
	// IDList makes.
	IDIn(placeholder string) string
	// IDList is the argument IDIn reads.
	IDList(ids []int64) any
	// ErrorsWith is a job's errors with one more attempt error, whose
	// text is the argument in placeholder, as River records a failure.
	ErrorsWith(placeholder string) string
}

// MigrationLockKey is the Postgres advisory lock that keeps two replicas
// starting together from creating the inbox's tables at once; "cake" in
// ASCII, so it cannot collide with River's keys.
const MigrationLockKey = 0x63616b65

// SQLite is SQLite's dialect.
var SQLite Dialect = sqliteDialect{}

// Postgres is Postgres's dialect.
var Postgres Dialect = postgresDialect{}

type sqliteDialect struct{}

func (sqliteDialect) Name() string      { return "sqlite" }
func (sqliteDialect) Now() string       { return `datetime('now', 'subsec')` }
func (sqliteDialect) NowMillis() string { return `CAST(unixepoch('subsec') * 1000 AS INTEGER)` }
func (sqliteDialect) SecondsSince(t string) string {
	return `CAST(unixepoch('now', 'subsec') - unixepoch(` + t + `, 'subsec') AS INTEGER)`
}
func (sqliteDialect) EpochSeconds(t string) string { return `unixepoch(` + t + `)` }
func (sqliteDialect) LastAttemptedBy() string      { return `json_extract(attempted_by, '$[#-1]')` }
func (sqliteDialect) ArgText(field string) string {
	return `json_extract(args, '$.` + field + `')`
}
func (sqliteDialect) MetadataWithout(keys ...string) string {
	paths := ""
	for _, k := range keys {
		paths += `, '$.` + k + `'`
	}
	return `jsonb_remove(metadata` + paths + `)`
}
func (sqliteDialect) MetadataWithTrue(key string) string {
	return `jsonb_set(metadata, '$.` + key + `', json('true'))`
}
func (sqliteDialect) MetadataIsTrue(key string) string {
	return `coalesce(json_extract(metadata, '$.` + key + `'), 0) = 1`
}
func (sqliteDialect) MigrationLock() string { return "" }
func (sqliteDialect) IDIn(placeholder string) string {
	return `id IN (SELECT value FROM json_each(` + placeholder + `))`
}
func (sqliteDialect) IDList(ids []int64) any {
	b, _ := json.Marshal(ids) // integers always encode
	return string(b)
}

func (sqliteDialect) ErrorsWith(placeholder string) string {
	return `jsonb(json_insert(json(coalesce(errors, jsonb('[]'))), '$[#]', json_object(` +
		`'at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'attempt', attempt, 'error', ` + placeholder + `, 'trace', '')))`
}

type postgresDialect struct{}

func (postgresDialect) Name() string { return "postgres" }
func (postgresDialect) Now() string  { return `now()` }
func (postgresDialect) NowMillis() string {
	return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
}
func (postgresDialect) SecondsSince(t string) string {
	return `extract(epoch from (now() - ` + t + `))::bigint`
}
func (postgresDialect) EpochSeconds(t string) string { return `extract(epoch from ` + t + `)::bigint` }
func (postgresDialect) LastAttemptedBy() string      { return `attempted_by[array_upper(attempted_by, 1)]` }
func (postgresDialect) ArgText(field string) string  { return `args->>'` + field + `'` }
func (postgresDialect) MetadataWithout(keys ...string) string {
	s := `metadata`
	for _, k := range keys {
		s += ` - '` + k + `'`
	}
	return s
}
func (postgresDialect) MetadataWithTrue(key string) string {
	return `metadata || jsonb_build_object('` + key + `', true)`
}
func (postgresDialect) MetadataIsTrue(key string) string {
	return `coalesce(metadata->>'` + key + `', '') = 'true'`
}
func (postgresDialect) MigrationLock() string {
	return `SELECT pg_advisory_xact_lock(` + strconv.Itoa(MigrationLockKey) + `)`
}
func (postgresDialect) IDIn(placeholder string) string {
	return `id = ANY(` + placeholder + `::bigint[])`
}
func (postgresDialect) IDList(ids []int64) any { return ids }

func (postgresDialect) ErrorsWith(placeholder string) string {
	return `array_append(errors, jsonb_build_object('at', now(), 'attempt', attempt, 'error', ` + placeholder + `::text, 'trace', ''))`
}
