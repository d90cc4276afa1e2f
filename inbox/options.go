package inbox

import (
	"fmt"
	"log/slog"
	"time"
)

// Option configures Open, NewWorker or NewAcceptor. Open reports an invalid
// option as an error; NewWorker and NewAcceptor panic on one.
type Option func(*config) error

type config struct {
	logger              *slog.Logger
	duplicateWindow     time.Duration
	deadLetterRetention time.Duration
	maxAttempts         int
	workers             int
	jobTimeout          time.Duration
	maxBatch            int
	ddl                 []string
	tracing             bool
	faults              faultOptions // options_faults.go
}

const (
	// DefaultDuplicateWindow is how long a delivery is remembered by default.
	DefaultDuplicateWindow = 7 * 24 * time.Hour
	// DefaultDeadLetterRetention is how long dead letters are kept by default.
	DefaultDeadLetterRetention = 30 * 24 * time.Hour
	// DefaultMaxAttempts spreads retries over about 20 days with River's
	// backoff (attempt^4 seconds) before a delivery becomes a dead letter.
	DefaultMaxAttempts = 25
	// DefaultJobTimeout bounds one handler run by default.
	DefaultJobTimeout = time.Minute
)

// mustConfig is buildConfig for the constructors that return no error:
// an invalid option is a mistake in the program, told at once.
func mustConfig(opts []Option) *config {
	cfg, err := buildConfig(opts)
	if err != nil {
		panic(err)
	}
	return cfg
}

// buildConfig applies opts over the defaults and reports the first invalid one.
func buildConfig(opts []Option) (*config, error) {
	cfg := &config{
		logger:              slog.Default(),
		duplicateWindow:     DefaultDuplicateWindow,
		deadLetterRetention: DefaultDeadLetterRetention,
		maxAttempts:         DefaultMaxAttempts,
		jobTimeout:          DefaultJobTimeout,
		maxBatch:            256,
	}
	var first error
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(cfg); err != nil && first == nil {
			first = err
		}
	}
	return cfg, first
}

// WithLogger sets where the inbox logs; without it, slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("inbox: WithLogger(nil)")
		}
		c.logger = l
		return nil
	}
}

// WithDuplicateWindow sets how long a delivery is remembered: the same body
// again within it is acknowledged as a duplicate and not processed twice,
// and a delivery created longer ago than it is refused as a possible replay.
// Completed jobs stay in River's table that long. The default is 7 days.
func WithDuplicateWindow(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Hour {
			return fmt.Errorf("inbox: WithDuplicateWindow(%s): want at least an hour", d)
		}
		c.duplicateWindow = d
		return nil
	}
}

// WithDeadLetterRetention sets how long deliveries whose every attempt failed
// stay for an operator to inspect and retry. The default is 30 days.
func WithDeadLetterRetention(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Hour {
			return fmt.Errorf("inbox: WithDeadLetterRetention(%s): want at least an hour", d)
		}
		c.deadLetterRetention = d
		return nil
	}
}

// WithMaxAttempts sets how many times a failing delivery runs before it
// becomes a dead letter. The default is 25, about 20 days of retries.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("inbox: WithMaxAttempts(%d): want at least 1", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithWorkers sets how many deliveries one process works at once. The
// default suits the database: 200 on SQLite, 300 on Postgres; most of them
// wait for a turn in a batch, which is cheap.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("inbox: WithWorkers(%d): want 1 to 10000", n)
		}
		c.workers = n
		return nil
	}
}

// WithJobTimeout bounds one handler run; a run that overruns it is retried.
// The default is a minute.
func WithJobTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("inbox: WithJobTimeout(%s): want a positive duration", d)
		}
		c.jobTimeout = d
		return nil
	}
}

// WithMaxBatch caps how many deliveries' effects commit in one transaction.
// The default is 256; 1 commits each delivery on its own.
func WithMaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("inbox: WithMaxBatch(%d): want at least 1", n)
		}
		c.maxBatch = n
		return nil
	}
}

// WithDDL adds the application's own statements (CREATE TABLE, CREATE
// INDEX) to Open's migration. They run after River's and the inbox's, in
// one transaction, every time Open runs, so write them to be repeated:
// CREATE TABLE IF NOT EXISTS.
func WithDDL(statements ...string) Option {
	return func(c *config) error {
		c.ddl = append(c.ddl, statements...)
		return nil
	}
}

// WithSchema is WithDDL's former name.
//
// Deprecated: use WithDDL; River's own "schema" is a Postgres schema, which
// these statements are not.
func WithSchema(statements ...string) Option { return WithDDL(statements...) }

// WithTracing adds River's OpenTelemetry middleware and a span from each
// delivery's request to its insert, using the global tracer provider, so a
// trace links an acknowledgement to its processing. Off by default.
func WithTracing() Option {
	return func(c *config) error {
		c.tracing = true
		return nil
	}
}
