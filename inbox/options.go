package inbox

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// Option configures Open, NewWorker, NewAcceptor or RiverConfig. Each
// option's documentation says which of them it applies to; every option
// applies to Open. Open and RiverConfig report an invalid option, or one
// that does not apply, as an error; NewWorker and NewAcceptor panic on one.
type Option func(*config) error

// target is what an option configures.
type target uint8

const (
	forOpen target = 1 << iota
	forWorker
	forAcceptor
	forRiverConfig
	forAll = forOpen | forWorker | forAcceptor | forRiverConfig
)

func (t target) String() string {
	switch t {
	case forWorker:
		return "NewWorker"
	case forAcceptor:
		return "NewAcceptor"
	case forRiverConfig:
		return "RiverConfig"
	default:
		return "Open"
	}
}

// option makes an Option named name that configures targets (Open always).
func option(name string, targets target, apply func(*config) error) Option {
	return func(c *config) error {
		if c.target&(targets|forOpen) == 0 {
			return fmt.Errorf("inbox: %s does not apply to %s: %s", name, c.target, c.target.applies())
		}
		return apply(c)
	}
}

// applies says where to give what only Open takes.
func (t target) applies() string {
	switch t {
	case forWorker:
		return "the worker takes WithLogger, WithJobTimeout, WithTxTimeout, WithMaxBatch, WithDuplicateWindow, WithSubscriber and WithOrderKey"
	case forAcceptor:
		return "the acceptor takes WithLogger, WithDuplicateWindow, WithMaxAttempts, WithAcknowledgeTimeout, WithSubscriber and WithTracing"
	default:
		return "RiverConfig takes WithDuplicateWindow, WithDeadLetterRetention, WithWorkers, WithSubscriber and WithTracing"
	}
}

type config struct {
	target              target // what is being configured
	logger              *slog.Logger
	duplicateWindow     time.Duration
	deadLetterRetention time.Duration
	maxAttempts         int
	workers             int
	adminHosts          []string // WithAdminHosts, in admin_options.go
	jobTimeout          time.Duration
	txTimeout           time.Duration
	maxBatch            int
	ddl                 []string
	tracing             bool
	subscribers         []subscriber // added with WithSubscriber, in order
	orderKey            func(e *webhooks.Event) (string, bool)
	ackTimeout          time.Duration
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
	// DefaultTxTimeout bounds by default how long a handler keeps its Tx
	// after its first statement. On SQLite, acknowledgements and heartbeats
	// wait while a handler keeps it: 2 s keeps both answering within 3 s.
	DefaultTxTimeout = 2 * time.Second
	// DefaultAcknowledgeTimeout is how long a delivery may wait for its
	// commit by default before it is answered 503: Cakemail's own limit.
	DefaultAcknowledgeTimeout = 5 * time.Second
)

// mustConfig is buildConfig for the constructors that return no error:
// an invalid option is a mistake in the program, told at once.
func mustConfig(t target, opts []Option) *config {
	cfg, err := buildConfig(t, opts)
	if err != nil {
		panic(err)
	}
	return cfg
}

// buildConfig applies opts over the defaults for t and reports the first
// invalid one.
func buildConfig(t target, opts []Option) (*config, error) {
	cfg := &config{
		target:              t,
		logger:              slog.Default(),
		duplicateWindow:     DefaultDuplicateWindow,
		deadLetterRetention: DefaultDeadLetterRetention,
		maxAttempts:         DefaultMaxAttempts,
		jobTimeout:          DefaultJobTimeout,
		txTimeout:           DefaultTxTimeout,
		ackTimeout:          DefaultAcknowledgeTimeout,
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

// WithLogger sets where the inbox logs; without it, slog.Default(). It
// applies everywhere.
func WithLogger(l *slog.Logger) Option {
	return option("WithLogger", forAll, func(c *config) error {
		if l == nil {
			return fmt.Errorf("inbox: WithLogger(nil)")
		}
		c.logger = l
		return nil
	})
}

// WithDuplicateWindow sets how long a delivery is remembered: the same body
// again within it is acknowledged as a duplicate and not processed twice,
// and a delivery created longer ago than it is refused as a possible replay.
// Completed jobs stay in River's table that long. The default is 7 days. It
// applies everywhere: to the acceptor's refusal, the worker's order keys and
// RiverConfig's retention.
func WithDuplicateWindow(d time.Duration) Option {
	return option("WithDuplicateWindow", forAll, func(c *config) error {
		if d < time.Hour {
			return fmt.Errorf("inbox: WithDuplicateWindow(%s): want at least an hour", d)
		}
		c.duplicateWindow = d
		return nil
	})
}

// WithDeadLetterRetention sets how long deliveries whose every attempt failed
// stay for an operator to inspect and retry. The default is 30 days. It
// applies to Open and RiverConfig.
func WithDeadLetterRetention(d time.Duration) Option {
	return option("WithDeadLetterRetention", forRiverConfig, func(c *config) error {
		if d < time.Hour {
			return fmt.Errorf("inbox: WithDeadLetterRetention(%s): want at least an hour", d)
		}
		c.deadLetterRetention = d
		return nil
	})
}

// WithMaxAttempts sets how many times a failing delivery runs before it
// becomes a dead letter. The default is 25, about 20 days of retries. It
// applies to Open and NewAcceptor, which gives each job its attempts.
func WithMaxAttempts(n int) Option {
	return option("WithMaxAttempts", forAcceptor, func(c *config) error {
		if n < 1 {
			return fmt.Errorf("inbox: WithMaxAttempts(%d): want at least 1", n)
		}
		c.maxAttempts = n
		return nil
	})
}

// WithWorkers sets how many deliveries one process works at once. The
// default suits the database: 200 on SQLite, 300 on Postgres; most of them
// wait for a turn in a batch, which is cheap. Each subscriber's queue gets
// as many. It applies to Open and RiverConfig.
func WithWorkers(n int) Option {
	return option("WithWorkers", forRiverConfig, func(c *config) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("inbox: WithWorkers(%d): want 1 to 10000", n)
		}
		c.workers = n
		return nil
	})
}

// WithJobTimeout bounds one handler run; a run that overruns it is retried.
// The default is a minute. It applies to Open and NewWorker.
func WithJobTimeout(d time.Duration) Option {
	return option("WithJobTimeout", forWorker, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("inbox: WithJobTimeout(%s): want a positive duration", d)
		}
		c.jobTimeout = d
		return nil
	})
}

// WithTxTimeout bounds how long a handler may keep its Tx after its first
// statement, on both databases. Past it, the handler's context is cancelled,
// its effects are rolled back, its later calls fail with ErrTxDone, and River
// retries the delivery with backoff; the handler's cooperation is not needed.
// The default is DefaultTxTimeout. It applies to Open and NewWorker.
func WithTxTimeout(d time.Duration) Option {
	return option("WithTxTimeout", forWorker, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("inbox: WithTxTimeout(%s): want a positive duration", d)
		}
		c.txTimeout = d
		return nil
	})
}

// WithAcknowledgeTimeout bounds how long a delivery waits for its commit,
// from the moment it reaches the inbox to its answer: past it, the delivery
// is answered 503 with Retry-After and Cakemail sends it again (a duplicate,
// answered 200, if its commit finished after all). The default is
// DefaultAcknowledgeTimeout. It applies to Open and NewAcceptor.
func WithAcknowledgeTimeout(d time.Duration) Option {
	return option("WithAcknowledgeTimeout", forAcceptor, func(c *config) error {
		if d < 100*time.Millisecond || d > time.Minute {
			return fmt.Errorf("inbox: WithAcknowledgeTimeout(%s): want 100ms to 1m", d)
		}
		c.ackTimeout = d
		return nil
	})
}

// WithMaxBatch caps how many deliveries' effects commit in one transaction.
// The default is 256; 1 commits each delivery on its own. It applies to
// Open and NewWorker.
func WithMaxBatch(n int) Option {
	return option("WithMaxBatch", forWorker, func(c *config) error {
		if n < 1 {
			return fmt.Errorf("inbox: WithMaxBatch(%d): want at least 1", n)
		}
		c.maxBatch = n
		return nil
	})
}

// WithDDL adds the application's own statements (CREATE TABLE, CREATE
// INDEX) to Open's migration. They run after River's and the inbox's, in
// one transaction, every time Open runs, so write them to be repeated:
// CREATE TABLE IF NOT EXISTS. It applies to Open only: a service with its
// own River client runs its own migrations.
func WithDDL(statements ...string) Option {
	return option("WithDDL", forOpen, func(c *config) error {
		c.ddl = append(c.ddl, statements...)
		return nil
	})
}

// WithSchema is WithDDL's former name.
//
// Deprecated: use WithDDL; River's own "schema" is a Postgres schema, which
// these statements are not.
func WithSchema(statements ...string) Option { return WithDDL(statements...) }

// WithTracing adds River's OpenTelemetry middleware and a span from each
// delivery's request to its insert, using the global tracer provider, so a
// trace links an acknowledgement to its processing. Off by default. It
// applies to Open, NewAcceptor (the accept span) and RiverConfig (River's
// middleware).
func WithTracing() Option {
	return option("WithTracing", forAcceptor|forRiverConfig, func(c *config) error {
		c.tracing = true
		return nil
	})
}

// DefaultSubscriber names the router given to Open, NewWorker or NewAcceptor
// in logs, metrics, River UI and cakemail-inbox: the subscriber every inbox has.
const DefaultSubscriber = sqldb.DefaultSubscriber

// subscriber is a router that gets a job of its own for every delivery it handles.
type subscriber struct {
	name   string
	router *webhooks.Router
}

// WithSubscriber adds a consumer of the inbox's deliveries beside the router
// given to Open: every delivery its router handles (a route, or
// OnUnhandled) gets a job of its own, inserted in the same transaction as
// the default subscriber's, so one acknowledgement stores all of them. Each
// job is its own exactly-once unit, with its own transaction, attempts,
// backoff and dead letter, and its own queue of workers: a subscriber that
// fails or hangs never holds the others back. The name is a short lower-case
// identifier (crm, audit_log), at most 32 characters, unique within the
// inbox, and not DefaultSubscriber; it labels the subscriber's metrics, logs
// and jobs, and cakemail-inbox selects by it. A subscriber added later gets
// only deliveries that arrive after it; see cakemail-inbox replay
// --subscriber to backfill. It applies everywhere: give the same
// subscribers to NewWorker, NewAcceptor and RiverConfig.
func WithSubscriber(name string, router *webhooks.Router) Option {
	return option("WithSubscriber", forAll, func(c *config) error {
		switch {
		case name == DefaultSubscriber:
			return fmt.Errorf("inbox: WithSubscriber(%q): the router given to Open is already the %q subscriber", name, name)
		case !sqldb.ValidSubscriberName(name):
			return fmt.Errorf("inbox: WithSubscriber(%q): want a short lower-case identifier such as crm or audit_log (a letter, then letters, digits and single underscores; at most %d characters)", name, sqldb.MaxSubscriberName)
		case router == nil:
			return fmt.Errorf("inbox: WithSubscriber(%q, nil): want a router", name)
		}
		for _, s := range c.subscribers {
			if s.name == name {
				return fmt.Errorf("inbox: WithSubscriber(%q) given twice", name)
			}
		}
		c.subscribers = append(c.subscribers, subscriber{name, router})
		return nil
	})
}
