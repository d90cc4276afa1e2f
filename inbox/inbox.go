package inbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// Inbox receives Cakemail deliveries durably: it acknowledges each once it is
// committed as a River job, and works the jobs through a webhooks.Router.
type Inbox struct {
	log      *slog.Logger
	clientID string
	metrics  *metrics
	live     *liveness
	acceptor *Acceptor
	river    riverClient
	admin    http.Handler
	closeDB  func()

	mu      sync.Mutex
	started bool
	stopped bool
}

// riverClient is the part of a River client the Inbox starts and stops.
type riverClient interface {
	inserter
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// Open connects to the database at databaseURL, migrates River's tables and
// the inbox's own, and prepares a River client whose workers dispatch to
// router. The URL is sqlite:///path/to/file.db (created when missing; one
// process per database) or postgres://... (any number of processes).
// Nothing runs until Start.
func Open(ctx context.Context, databaseURL string, router *webhooks.Router, opts ...Option) (*Inbox, error) {
	cfg, err := buildConfig(forOpen, opts)
	if err != nil {
		return nil, err
	}
	if router == nil {
		return nil, errors.New("inbox: Open with a nil router")
	}
	target, err := sqldb.ParseURL(databaseURL)
	if err != nil {
		return nil, errors.New("inbox: database URL: " + err.Error())
	}
	if target.SQLitePath != "" {
		db, err := openSQLite(target.SQLitePath)
		if err != nil {
			return nil, err
		}
		return open(ctx, db, router, cfg)
	}
	db, err := openPostgres(ctx, target.PostgresURL, cfg.txTimeout)
	if err != nil {
		return nil, err
	}
	return open(ctx, db, router, cfg)
}

// open prepares an Inbox on a database Open connected to.
func open[TTx any](ctx context.Context, db database[TTx], router *webhooks.Router, cfg *config) (ib *Inbox, err error) {
	defer func() {
		if err != nil {
			db.close()
		}
	}()
	if err := migrate(ctx, db, cfg.ddl); err != nil {
		return nil, fmt.Errorf("inbox: migrating the database: %w", err)
	}
	workers := cfg.workers
	if workers == 0 {
		workers = db.tuning().workers
	}
	clientID := newClientID()
	m := newMetrics(db.conn(), cfg.subscriberNames())
	registry := river.NewWorkers()
	worker := newWorker(router, dialect[TTx](db), cfg, m)
	river.AddWorker(registry, worker)
	riverConfig := &river.Config{
		ID:                          clientID,
		Logger:                      slog.New(minLevel{cfg.logger.Handler(), slog.LevelWarn}).With("component", "river"),
		Queues:                      queueConfigs(cfg.queues(), workers),
		Workers:                     registry,
		MaxAttempts:                 cfg.maxAttempts,
		JobTimeout:                  cfg.jobTimeout,
		RescueStuckJobsAfter:        cfg.jobTimeout + time.Minute,
		CompletedJobRetentionPeriod: cfg.duplicateWindow,
		DiscardedJobRetentionPeriod: cfg.deadLetterRetention,
		CancelledJobRetentionPeriod: cfg.deadLetterRetention,
		// New jobs are found by notification where the database has them;
		// these bound the wait otherwise. A fetch is a commit: fetching at
		// most every 50 ms takes bigger batches and leaves the database to
		// acknowledgements (tuned with BenchmarkBurst).
		FetchCooldown:     50 * time.Millisecond,
		FetchPollInterval: 100 * time.Millisecond,
		Middleware:        tracingMiddleware(cfg),
	}
	client, err := river.NewClient(db.driver(), riverConfig)
	if err != nil {
		return nil, err
	}
	ib = &Inbox{
		log:      cfg.logger,
		clientID: clientID,
		metrics:  m,
		live:     newLiveness(db.conn(), db.singleProcess(), clientID, cfg.queues(), &worker.working, cfg.logger),
		acceptor: newAcceptor(client, db.tuning(), cfg, m),
		river:    client,
		closeDB:  db.close,
	}
	ib.acceptor.accepting.Store(false) // until Start
	if w, ok := any(db).(filesWatcher); ok {
		if err := w.watchFiles(cfg.logger, ib.acceptor.refuse); err != nil {
			return nil, err
		}
	}
	if ib.admin, err = newAdminHandler(ib, client, db.conn(), cfg); err != nil {
		return nil, err
	}
	return ib, nil
}

// queueConfigs gives each subscriber's queue workers of its own.
func queueConfigs(queues []string, workers int) map[string]river.QueueConfig {
	c := make(map[string]river.QueueConfig, len(queues))
	for _, q := range queues {
		c[q] = river.QueueConfig{MaxWorkers: workers}
	}
	return c
}

// newClientID names this process in river_job.attempted_by; it is never
// reused, so a dead process's jobs can be told from a live one's.
func newClientID() string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("inbox-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Start beats this process's heartbeat, hands back the jobs that dead
// processes left running, and starts River's workers. Deliveries are
// answered 503 until it returns.
func (ib *Inbox) Start(ctx context.Context) error {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.stopped {
		return errors.New("inbox: Start after Stop")
	}
	if ib.started {
		return nil
	}
	if err := ib.live.start(ctx); err != nil {
		return err
	}
	// Stopping is Stop's job: a cancelled ctx would cut running jobs short.
	if err := ib.river.Start(context.WithoutCancel(ctx)); err != nil {
		ib.live.close(ctx)
		return err
	}
	ib.started = true
	ib.acceptor.open()
	ib.log.Info("inbox started", "client", ib.clientID)
	return nil
}

// Stop stops accepting (later deliveries get 503), answers the deliveries
// already taken, lets running jobs finish within ctx and cancels the rest (a
// cancelled job runs again later), then closes the database. It is safe to
// call more than once.
func (ib *Inbox) Stop(ctx context.Context) error {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.stopped {
		return nil
	}
	ib.stopped = true
	ib.acceptor.Close()
	var err error
	if ib.started {
		if err = ib.river.Stop(ctx); err != nil {
			ib.log.Warn("inbox: jobs still running at the shutdown deadline: cancelling them", "err", err)
			cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err = ib.river.StopAndCancel(cancelCtx)
			cancel()
		}
		ib.live.close(context.WithoutCancel(ctx))
	}
	ib.closeDB()
	return err
}

// ServeHTTP acknowledges a verified delivery once it is committed; mount it
// behind webhooks.Verifier.Middleware. It answers 202 for a new delivery,
// 200 for a duplicate, 400 for one older than the duplicate window, and 503
// with Retry-After when the delivery was not stored.
func (ib *Inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ib.acceptor.ServeHTTP(w, r)
}

// minLevel keeps River's routine messages out of the log stream; the worker
// logs every failed attempt itself.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
